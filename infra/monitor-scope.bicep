// Adds the app's Log Analytics workspace and Application Insights component to an existing Azure
// Monitor Private Link Scope (AMPLS), so telemetry and log queries from the VNet go through the scope's
// private endpoint. Deployed into the scope's resource group (main.bicep, networkIsolation).
// Resource shape: azure-rest-api-specs, Microsoft.Insights 2021-07-01-preview privateLinkScopes_API.json
// (PrivateLinkScopedResourceUpdate example: properties.linkedResourceId).
targetScope = 'resourceGroup'

param scopeName string
param linkedResourceIds array

resource scope 'Microsoft.Insights/privateLinkScopes@2021-07-01-preview' existing = {
  name: scopeName
}

resource scoped 'Microsoft.Insights/privateLinkScopes/scopedResources@2021-07-01-preview' = [for id in linkedResourceIds: {
  parent: scope
  name: 'safe-rollout-${last(split(id, '/'))}'
  properties: {
    linkedResourceId: id
  }
}]
