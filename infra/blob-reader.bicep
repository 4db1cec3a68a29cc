// Storage Blob Data Reader for the app's identity on the account holding prediction-comparison inputs
// (a sample file's container, or the workspace blob store with the data collector's output). Deployed
// into that account's resource group (main.bicep, predictionInputsStorageId).
// Role id: Microsoft Learn, "Azure built-in roles", Storage Blob Data Reader.
targetScope = 'resourceGroup'

param storageAccountName string
param principalId string

var storageBlobDataReader = '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'

resource inputs 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource reader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(inputs.id, principalId, storageBlobDataReader)
  scope: inputs
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataReader)
  }
}
