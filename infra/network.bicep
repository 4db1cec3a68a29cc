// The private half of Safe Rollout (main.bicep, networkIsolation): private endpoints with private DNS
// zone groups for the app's storage account (blob: host storage, deployment package, dead letters;
// table: rollout state; queue: the work queue and its poison queue) and the lifecycle Event Grid topic,
// in an existing subnet. The zones are created here and linked to the VNet, or, when
// privateDnsZonesResourceGroup names a resource group, that group's zones are used (already linked).
// Zone names: Microsoft Learn, "Azure Private Endpoint private DNS zone values".
targetScope = 'resourceGroup'

param location string
param tags object

@description('The Function App\'s integration subnet (its VNet gets the zone links).')
@minLength(1)
param integrationSubnetId string

@description('The subnet the private endpoints go in.')
@minLength(1)
param privateEndpointSubnetId string

@description('Resource group of existing, already linked private DNS zones; empty: create them here.')
param privateDnsZonesResourceGroup string = ''

@description('The subscription of privateDnsZonesResourceGroup; empty: this one.')
param privateDnsZonesSubscriptionId string = ''

@minLength(1)
param storageAccountId string

param enableLifecycleTopic bool

param lifecycleTopicId string

var virtualNetworkId = split(integrationSubnetId, '/subnets/')[0]
var storageName = last(split(storageAccountId, '/'))
var topicName = last(split(lifecycleTopicId, '/'))

// Storage services the app uses, each its own private endpoint (a private endpoint serves one
// sub-resource) and zone.
var storageServices = [ 'blob', 'table', 'queue' ]
var storageZones = [for service in storageServices: 'privatelink.${service}.${environment().suffixes.storage}']
var topicZone = 'privatelink.eventgrid.azure.net'
var zoneNames = concat(storageZones, [ topicZone ])
var createZones = empty(privateDnsZonesResourceGroup)

resource zones 'Microsoft.Network/privateDnsZones@2020-06-01' = [for zone in zoneNames: if (empty(privateDnsZonesResourceGroup)) {
  name: zone
  location: 'global'
  tags: tags
}]

resource zoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = [for (zone, i) in zoneNames: if (empty(privateDnsZonesResourceGroup)) {
  parent: zones[i]
  name: 'safe-rollout-${uniqueString(virtualNetworkId)}'
  location: 'global'
  tags: tags
  properties: {
    registrationEnabled: false
    virtualNetwork: { id: virtualNetworkId }
  }
}]

var zonesSubscription = empty(privateDnsZonesSubscriptionId) ? subscription().subscriptionId : privateDnsZonesSubscriptionId
var zoneIds = [for zone in zoneNames: createZones ? resourceId('Microsoft.Network/privateDnsZones', zone) : resourceId(zonesSubscription, privateDnsZonesResourceGroup, 'Microsoft.Network/privateDnsZones', zone)]

resource storageEndpoints 'Microsoft.Network/privateEndpoints@2024-05-01' = [for service in storageServices: {
  name: 'pe-${storageName}-${service}'
  location: location
  tags: tags
  properties: {
    subnet: { id: privateEndpointSubnetId }
    privateLinkServiceConnections: [
      {
        name: '${storageName}-${service}'
        properties: {
          privateLinkServiceId: storageAccountId
          groupIds: [ service ]
        }
      }
    ]
  }
}]

resource storageZoneGroups 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = [for (service, i) in storageServices: {
  parent: storageEndpoints[i]
  name: 'default'
  dependsOn: [ zones ]
  properties: {
    privateDnsZoneConfigs: [
      {
        name: service
        properties: { privateDnsZoneId: zoneIds[i] }
      }
    ]
  }
}]

resource topicEndpoint 'Microsoft.Network/privateEndpoints@2024-05-01' = if (enableLifecycleTopic) {
  name: 'pe-${topicName}-topic'
  location: location
  tags: tags
  properties: {
    subnet: { id: privateEndpointSubnetId }
    privateLinkServiceConnections: [
      {
        name: '${topicName}-topic'
        properties: {
          privateLinkServiceId: lifecycleTopicId
          groupIds: [ 'topic' ]
        }
      }
    ]
  }
}

resource topicZoneGroup 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = if (enableLifecycleTopic) {
  parent: topicEndpoint
  name: 'default'
  dependsOn: [ zones ]
  properties: {
    privateDnsZoneConfigs: [
      {
        name: 'topic'
        properties: { privateDnsZoneId: zoneIds[length(storageServices)] }
      }
    ]
  }
}

output virtualNetworkId string = virtualNetworkId
