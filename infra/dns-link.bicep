// Links an existing private DNS zone (here: one of the Azure ML workspace's own zones,
// privatelink.api.azureml.ms or privatelink.notebooks.azure.net) to the app's VNet, so the Function App
// resolves the workspace's and its online endpoints' names to the workspace's private endpoint.
// Deployed into the zone's resource group (main.bicep, networkIsolation).
targetScope = 'resourceGroup'

param zoneName string
param virtualNetworkId string
param tags object

resource zone 'Microsoft.Network/privateDnsZones@2020-06-01' existing = {
  name: zoneName
}

resource link 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = {
  parent: zone
  name: 'safe-rollout-${uniqueString(virtualNetworkId)}'
  location: 'global'
  tags: tags
  properties: {
    registrationEnabled: false
    virtualNetwork: { id: virtualNetworkId }
  }
}
