// What Safe Rollout needs in the Azure ML workspace's resource group: a least-privilege custom role
// for the app, Monitoring Reader, the Event Grid system topic (the workspace's existing one if named)
// with its ModelRegistered subscription, traffic-log diagnostics on the watched endpoints, and optional
// metric alerts calling the webhook.
targetScope = 'resourceGroup'

param workspaceName string
param appPrincipalId string
param functionAppId string
param functionHostName string
param logAnalyticsId string
param deadLetterStorageId string
param deadLetterContainer string
@description('Name of the Event Grid system topic the workspace already has, in this resource group; empty: create one. A source allows only one system topic (Microsoft Learn, "System topics in Azure Event Grid").')
param existingSystemTopicName string = ''
param monitoredEndpoints array
@secure()
param alertSecret string
param wireEvents bool
param enableAlerts bool
param alertLatencyMs int
param alertErrorsPerMinute int
param tags object

var monitoringReader = '43d0d8ad-25c7-4714-9337-8ba259a9fe05'
var endpointNamespace = 'Microsoft.MachineLearningServices/workspaces/onlineEndpoints'

resource ml 'Microsoft.MachineLearningServices/workspaces@2024-10-01' existing = {
  name: workspaceName
}

// Only what the rollout does: read endpoints, set traffic, create/tag/delete deployments, read the
// assets a copied deployment references, poll operations, smoke-test green with the endpoint's
// own credential: listKeys (auth mode key), token (aml_token) or score with the app's Entra token
// (aad_token), and read data assets (container for @latest, version) and datastores to find
// prediction inputs (metadata only: no datastores/listsecrets, the app reads the blobs with its own
// identity); an asset in another workspace needs these reads granted on that workspace. Operation
// names: Microsoft Learn, "Azure permissions for AI + machine learning"; which call needs which:
// "Authentication and authorization for online endpoints" (tests/infra/test_role.py).
resource rolloutRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(ml.id, 'safe-rollout-operator')
  properties: {
    roleName: 'Safe Rollout operator (${workspaceName})'
    description: 'Moves traffic between online deployments, creates, tags and deletes them, and reads data assets and datastores.'
    type: 'CustomRole'
    assignableScopes: [ ml.id ]
    permissions: [
      {
        actions: [
          'Microsoft.MachineLearningServices/workspaces/read'
          'Microsoft.MachineLearningServices/workspaces/onlineEndpoints/read'
          'Microsoft.MachineLearningServices/workspaces/onlineEndpoints/write'
          'Microsoft.MachineLearningServices/workspaces/onlineEndpoints/listKeys/action'
          'Microsoft.MachineLearningServices/workspaces/onlineEndpoints/token/action'
          'Microsoft.MachineLearningServices/workspaces/onlineEndpoints/score/action'
          'Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments/read'
          'Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments/write'
          'Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments/delete'
          'Microsoft.MachineLearningServices/workspaces/models/versions/read'
          'Microsoft.MachineLearningServices/workspaces/environments/versions/read'
          'Microsoft.MachineLearningServices/workspaces/codes/versions/read'
          'Microsoft.MachineLearningServices/workspaces/data/read'
          'Microsoft.MachineLearningServices/workspaces/data/versions/read'
          'Microsoft.MachineLearningServices/workspaces/datastores/read'
          'Microsoft.MachineLearningServices/locations/mfeOperationsStatus/read'
          'Microsoft.MachineLearningServices/locations/mfeOperationResults/read'
        ]
        notActions: []
      }
    ]
  }
}

resource rolloutAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(ml.id, appPrincipalId, rolloutRole.id)
  scope: ml
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: rolloutRole.id
  }
}

resource metricsReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(ml.id, appPrincipalId, monitoringReader)
  scope: ml
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringReader)
  }
}

// A source allows one system topic only: use the workspace's existing one when it has one (it needs a
// system-assigned identity for dead-lettering), else create it.
var systemTopicName = empty(existingSystemTopicName) ? 'evgst-${workspaceName}' : existingSystemTopicName

resource createdSystemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = if (empty(existingSystemTopicName)) {
  name: systemTopicName
  location: ml.location
  tags: tags
  identity: { type: 'SystemAssigned' }
  properties: {
    source: ml.id
    topicType: 'Microsoft.MachineLearningServices.Workspaces'
  }
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

// Created on azd's second pass: the destination function must exist first. Only the event type is
// filtered (the system topic already carries this workspace's events alone): Event Grid's filters
// compare plain strings (no globs), while policy.yaml targets may be globs; the app matches the model
// against the targets and ignores, with a log line, models no target names.
resource modelRegistered 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = if (wireEvents) {
  parent: systemTopic
  name: 'safe-rollout-model-registered'
  dependsOn: [ createdSystemTopic ]
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionAppId}/functions/model_registered'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [ 'Microsoft.MachineLearningServices.ModelRegistered' ]
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
    deadLetterWithResourceIdentity: {
      identity: { type: 'SystemAssigned' }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: deadLetterStorageId
          blobContainerName: deadLetterContainer
        }
      }
    }
  }
}

resource endpoints 'Microsoft.MachineLearningServices/workspaces/onlineEndpoints@2024-10-01' existing = [
  for endpoint in monitoredEndpoints: {
    parent: ml
    name: endpoint
  }
]

// One row per request in AmlOnlineEndpointTrafficLog: per-request latency for the comparison.
resource trafficLog 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = [
  for (endpoint, i) in monitoredEndpoints: {
    name: 'safe-rollout-traffic-log'
    scope: endpoints[i]
    properties: {
      workspaceId: logAnalyticsId
      logs: [
        { category: 'AmlOnlineEndpointTrafficLog', enabled: true }
      ]
    }
  }
]

// The action group's URL carries the alert_webhook function's own key (Microsoft.Web/sites/functions
// listKeys -> default), which opens that one function only; never a host key, which opens them all.
resource webhook 'Microsoft.Insights/actionGroups@2023-01-01' = if (wireEvents && enableAlerts) {
  name: 'ag-safe-rollout'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'saferollout'
    enabled: true
    webhookReceivers: [
      {
        name: 'safe-rollout-alert-webhook'
        serviceUri: 'https://${functionHostName}/api/alerts?secret=${alertSecret}&code=${listKeys('${functionAppId}/functions/alert_webhook', '2023-12-01').default}'
        useCommonAlertSchema: true
      }
    ]
  }
}

// Split by the `deployment` dimension, so the alert names the deployment and the webhook can tell
// green from blue. Metrics, aggregations, dimensions and grain are the ones Azure Monitor's "Supported
// metrics for Microsoft.MachineLearningServices/workspaces/onlineEndpoints" lists (any other is
// refused when the rule is created): RequestLatency_P99 and RequestsPerMinute take Average only, PT1M.
resource latencyAlerts 'Microsoft.Insights/metricAlerts@2018-03-01' = [
  for (endpoint, i) in monitoredEndpoints: if (wireEvents && enableAlerts) {
    name: 'safe-rollout-p99-${endpoint}'
    location: 'global'
    tags: tags
    properties: {
      description: 'A deployment of ${endpoint} answers slowly (P99); Safe Rollout rolls back green.'
      severity: 2
      enabled: true
      scopes: [ endpoints[i].id ]
      evaluationFrequency: 'PT1M'
      windowSize: 'PT5M'
      criteria: {
        'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
        allOf: [
          {
            criterionType: 'StaticThresholdCriterion'
            name: 'p99'
            metricNamespace: endpointNamespace
            metricName: 'RequestLatency_P99'
            operator: 'GreaterThan'
            threshold: alertLatencyMs
            timeAggregation: 'Average'
            dimensions: [ { name: 'deployment', operator: 'Include', values: [ '*' ] } ]
          }
        ]
      }
      actions: [ { actionGroupId: webhook.id } ]
    }
  }
]

resource errorAlerts 'Microsoft.Insights/metricAlerts@2018-03-01' = [
  for (endpoint, i) in monitoredEndpoints: if (wireEvents && enableAlerts) {
    name: 'safe-rollout-errors-${endpoint}'
    location: 'global'
    tags: tags
    properties: {
      description: 'A deployment of ${endpoint} fails requests (5xx, or 424: the model returned 500) at more than the threshold per minute, averaged over 5 minutes.'
      severity: 1
      enabled: true
      scopes: [ endpoints[i].id ]
      evaluationFrequency: 'PT1M'
      windowSize: 'PT5M'
      criteria: {
        'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
        allOf: [
          {
            criterionType: 'StaticThresholdCriterion'
            name: 'failed'
            metricNamespace: endpointNamespace
            metricName: 'RequestsPerMinute'
            operator: 'GreaterThan'
            threshold: alertErrorsPerMinute
            // RequestsPerMinute is already a per-minute count; Average is its only aggregation.
            timeAggregation: 'Average'
            dimensions: [
              { name: 'deployment', operator: 'Include', values: [ '*' ] }
              { name: 'statusCode', operator: 'Include', values: [ '424', '500', '502', '503', '504' ] }
            ]
          }
        ]
      }
      actions: [ { actionGroupId: webhook.id } ]
    }
  }
]

output systemTopicPrincipalId string = systemTopic.identity.principalId
output systemTopicName string = systemTopicName
output systemTopicId string = systemTopic.id
