// Safe Rollout: a Function App (Flex Consumption, Python 3.11) with its managed identity, the storage
// for its state, monitoring, least-privilege role assignments, and the wiring to an existing Azure ML
// workspace (Event Grid system topic, traffic-log diagnostics, optional alerts). Deploy with `azd up`.
targetScope = 'resourceGroup'

@description('azd environment name; used to name resources.')
@minLength(1)
@maxLength(40)
param environmentName string

@description('Region for the app and its resources.')
param location string = resourceGroup().location

@description('Name of the existing Azure ML workspace whose online endpoints are rolled out.')
param mlWorkspaceName string

@description('Resource group of the Azure ML workspace (default: this one).')
param mlWorkspaceResourceGroup string = resourceGroup().name

@description('Region of the Azure ML workspace: the metrics endpoint is regional.')
param mlWorkspaceLocation string = location

@description('Name of the Event Grid system topic the workspace already has (in its resource group); empty: one is created. Azure allows one system topic per source.')
param existingSystemTopicName string = ''

@description('Online endpoints to watch: their traffic log goes to Log Analytics; alert rules are created on them when enableAlerts.')
param monitoredEndpoints array = []

@description('Shared secret the alert webhook expects (16+ characters).')
@secure()
@minLength(16)
param alertSecret string

@description('Second pass of azd (postdeploy hook): create the Event Grid subscription and the alert action group, which need the deployed functions.')
param wireEvents bool = false

@description('Create metric alert rules (green tail latency, 5xx and 424) that call the alert webhook.')
param enableAlerts bool = false

@description('P99 latency (ms) above which the alert fires for a deployment.')
param alertLatencyMs int = 1000

@description('Failed requests (5xx or 424) per minute above which the alert fires for a deployment.')
param alertErrorsPerMinute int = 10

@description('Publish lifecycle events to an Event Grid custom topic (CloudEvents).')
param enableLifecycleTopic bool = true

@description('NCRONTAB (six fields, UTC) of the reconcile timer.')
param reconcileSchedule string = '0 */1 * * * *'

@description('App settings holding notification webhook URLs, named by the policy file\'s `notify.*.url_setting` (e.g. { TEAMS_WEBHOOK_URL: \'@Microsoft.KeyVault(SecretUri=https://<vault>.vault.azure.net/secrets/teams-webhook)\' }). Prefer Key Vault references: the URL is a credential.')
@secure()
param notificationSettings object = {}

@description('Alert rules on the app\'s own health: failed or missing reconcile ticks, a rollout past its deadline, dead-lettered events.')
param enableHealthAlerts bool = true

@description('E-mail addresses told when a health alert fires (an action group); empty: the alerts show in Azure Monitor only.')
param opsAlertEmails array = []

@description('A rollout still not finished this many hours after it started is reported as stuck (the default policy deadline is 24 h; the alert looks back 2 days).')
@minValue(2)
@maxValue(46)
param stuckAfterHours int = 26

@description('Largest number of instances the Flex Consumption plan may scale to.')
@minValue(1)
@maxValue(100)
param maximumInstanceCount int = 10

// -- Private network (off by default; docs/OPERATIONS.md, "Private network") ------------------------

@description('Private deployment: VNet integration of the Function App, private endpoints and DNS for its storage (blob, table, queue) and the lifecycle topic, storage and topic closed to public networks. Off: the public deployment, unchanged.')
param networkIsolation bool = false

@description('With networkIsolation: resource id of an existing subnet for the Function App\'s VNet integration, delegated to Microsoft.App/environments (Flex Consumption), used by nothing else.')
param integrationSubnetId string = ''

@description('With networkIsolation: resource id of an existing subnet (same VNet) for the private endpoints.')
param privateEndpointSubnetId string = ''

@description('With networkIsolation: resource group of existing privatelink.{blob,table,queue}.core.windows.net and privatelink.eventgrid.azure.net zones already linked to the VNet (central DNS); empty: the zones are created here and linked to the VNet.')
param privateDnsZonesResourceGroup string = ''

@description('With networkIsolation and privateDnsZonesResourceGroup: the subscription that group is in (hub-and-spoke: the connectivity subscription); empty: this one.')
param privateDnsZonesSubscriptionId string = ''

@description('With networkIsolation: resource ids of the ML workspace\'s own private DNS zones (privatelink.api.azureml.ms, which also answers the online endpoints\' scoring names, and privatelink.notebooks.azure.net) to link to the app\'s VNet; empty when the VNet is already linked to them.')
param mlPrivateDnsZoneIds array = []

@description('With networkIsolation: resource id of the Azure Monitor Private Link Scope the network uses; the app\'s Log Analytics workspace and Application Insights are added to it. Empty: none.')
param monitorPrivateLinkScopeId string = ''

@description('Resource id of a storage account holding prediction-comparison inputs (sample files, data collector output); the app\'s identity gets Storage Blob Data Reader on it. Empty: none.')
param predictionInputsStorageId string = ''

var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var prefix = toLower(take(replace(environmentName, '-', ''), 10))
var tags = { 'azd-env-name': environmentName, app: 'safe-rollout' }
var tableName = 'saferollouts'
var deploymentContainer = 'app-package'
var deadLetterContainer = 'eventgrid-deadletter'
// The dispatcher's work queue and the host's poison queue for it (`<name>-poison`, which the
// Functions host would otherwise create on first use).
var workQueueName = 'saferollout-work'
// Webhook URLs for notifications, as app settings named by the policy file (values never logged).
var notificationAppSettings = [for setting in items(notificationSettings): { name: setting.key, value: setting.value }]
// Azure built-in role ids (Microsoft Learn, "Azure built-in roles").
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  logAnalyticsReader: '73c42c96-874c-492b-b04d-ab87d138a893'
  eventGridDataSender: 'd5a91429-5739-47e2-a06b-3470a27159e7'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}
// With networkIsolation the integration and private-endpoint subnets belong to this VNet.
var virtualNetworkId = split(integrationSubnetId, '/subnets/')[0]

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${prefix}-${token}'
  location: location
  tags: tags
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 90
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${prefix}-${token}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    DisableLocalAuth: true
  }
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_206:LRS is enough: the tables hold rollout state that the next rollout recreates; GRS doubles cost for little gain
  // checkov:skip=CKV2_AZURE_1:Microsoft-managed keys; customer-managed keys are an organisation's choice, not a default
  // checkov:skip=CKV2_AZURE_33:Private endpoints come with networkIsolation (infra/network.bicep, blob/table/queue); checkov's Bicep runner has no such graph check to run
  // checkov:skip=CKV_AZURE_59:Public network access stays Enabled in both modes: Event Grid dead-letters here as a trusted service, which a Disabled account refuses; with networkIsolation defaultAction Deny leaves only private endpoints and trusted services
  // checkov:skip=CKV_AZURE_33:The work queue carries only rollout ids; every decision is in the rollout table's audit rows and the app's logs
  // checkov:skip=CKV_AZURE_35:[public mode] Flex Consumption without VNet integration reaches storage over its public endpoint; shared keys are disabled, so only Entra identities with a role get in
  // checkov:skip=CKV_AZURE_43:The name is computed (st + env + unique token, lower-case, at most 24 characters); checkov cannot evaluate it
  name: 'st${prefix}${take(token, 10)}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    networkAcls: {
      // Private: only the private endpoints and trusted Azure services (Event Grid dead-lettering
      // with its managed identity) get in.
      defaultAction: networkIsolation ? 'Deny' : 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: { enabled: true, days: 7 }
  }
}

resource packageContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: deploymentContainer
  properties: { publicAccess: 'None' }
}

resource deadLetters 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: deadLetterContainer
  properties: { publicAccess: 'None' }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource stateTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: tableName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// The timer enqueues work items here; the queue-triggered worker judges them (issue 15).
resource workQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: workQueueName
}

resource workPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: '${workQueueName}-poison'
}

resource lifecycleTopic 'Microsoft.EventGrid/topics@2022-06-15' = if (enableLifecycleTopic) {
  // checkov:skip=CKV_AZURE_193:[public mode] The Function App publishes over the topic's public endpoint (no VNet); local auth is disabled, so only the app's identity can send
  name: 'evgt-${prefix}-${token}'
  location: location
  tags: tags
  identity: { type: 'SystemAssigned' }
  properties: {
    inputSchema: 'CloudEventSchemaV1_0'
    disableLocalAuth: true
    publicNetworkAccess: networkIsolation ? 'Disabled' : 'Enabled'
  }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225:Flex Consumption plans scale per request; zone redundancy is a per-region option to enable where offered (docs/OPERATIONS.md)
  name: 'plan-${prefix}-${token}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { tier: 'FlexConsumption', name: 'FC1' }
  properties: { reserved: true }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_56:Function keys guard every HTTP function and the alert webhook adds a shared secret; Easy Auth would block Azure Monitor's webhook
  // checkov:skip=CKV_AZURE_17:Client certificates are not used by Event Grid or Azure Monitor webhooks
  // checkov:skip=CKV_AZURE_212:Flex Consumption scales instances on demand; a fixed minimum does not apply
  // checkov:skip=CKV_AZURE_222:Event Grid and Azure Monitor action groups deliver to the functions over the public endpoint in both modes (neither can reach a private endpoint); every HTTP function needs a key
  // checkov:skip=CKV_AZURE_213:A health-check path would need an anonymous function; the Functions host reports its own health to the platform
  name: 'func-${prefix}-${token}'
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: { type: 'SystemAssigned' }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    // Outbound through the VNet (Flex Consumption regional VNet integration).
    virtualNetworkSubnetId: networkIsolation ? integrationSubnetId : null
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: concat([
        { name: 'AzureWebJobsStorage__accountName', value: storage.name }
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: insights.properties.ConnectionString }
        { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'Authorization=AAD' }
        { name: 'SAFE_ROLLOUT_POLICY_FILE', value: 'policy.yaml' }
        { name: 'SAFE_ROLLOUT_STORAGE_ACCOUNT_URL', value: storage.properties.primaryEndpoints.table }
        { name: 'SAFE_ROLLOUT_TABLE_NAME', value: tableName }
        // metrics:getBatch is regional: the app fills {region} with each endpoint's own location.
        { name: 'SAFE_ROLLOUT_METRICS_ENDPOINT', value: 'https://{region}.metrics.monitor.azure.com' }
        { name: 'SAFE_ROLLOUT_LOG_ANALYTICS_WORKSPACE_ID', value: logs.properties.customerId }
        { name: 'SAFE_ROLLOUT_LOGS_ENDPOINT', value: 'https://api.loganalytics.io' }
        { name: 'SAFE_ROLLOUT_EVENTGRID_TOPIC_ENDPOINT', value: enableLifecycleTopic ? lifecycleTopic.properties.endpoint : '' }
        { name: 'SAFE_ROLLOUT_ALERT_SECRET', value: alertSecret }
        { name: 'SAFE_ROLLOUT_RECONCILE_SCHEDULE', value: reconcileSchedule }
        { name: 'SAFE_ROLLOUT_MAX_CONCURRENCY', value: '8' }
        { name: 'SAFE_ROLLOUT_TICK_BUDGET_SECONDS', value: '240' }
        { name: 'SAFE_ROLLOUT_POLLING_INTERVAL', value: '5' }
        { name: 'SAFE_ROLLOUT_CREDENTIAL', value: 'default' }
        // The dispatcher's queue: the trigger's identity-based connection (`SAFE_ROLLOUT_QUEUE` plus
        // `__queueServiceUri`, learn.microsoft.com/azure/azure-functions/functions-reference#connecting-to-host-storage-with-an-identity)
        { name: 'SAFE_ROLLOUT_WORK_QUEUE', value: workQueue.name }
        { name: 'SAFE_ROLLOUT_QUEUE__queueServiceUri', value: storage.properties.primaryEndpoints.queue }
        { name: 'SAFE_ROLLOUT_BATCH_SIZE', value: '25' }
        // Per instance and subscription: a quarter of ARM's documented rates (25 reads/s, 10 writes/s),
        // so up to four instances at full speed stay under them.
        { name: 'SAFE_ROLLOUT_ARM_READS_PER_SECOND', value: '6' }
        { name: 'SAFE_ROLLOUT_ARM_WRITES_PER_SECOND', value: '2' }
      ], notificationAppSettings)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainer}'
          authentication: { type: 'SystemAssignedIdentity' }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: 2048
      }
      runtime: { name: 'python', version: '3.11' }
    }
  }
}

// The app's identity: host storage (deployment package, timer leases) and rollout state.
resource appBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, app.id, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    principalId: app.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
  }
}

// Storage Queue Data Contributor: the timer sends work items, the worker's trigger reads and
// deletes them, and the host moves failed ones to the poison queue.
resource appQueues 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, app.id, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    principalId: app.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
  }
}

resource appTables 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(stateTable.id, app.id, roles.storageTableDataContributor)
  scope: stateTable
  properties: {
    principalId: app.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
  }
}

resource appLogsReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(logs.id, app.id, roles.logAnalyticsReader)
  scope: logs
  properties: {
    principalId: app.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.logAnalyticsReader)
  }
}

resource appTelemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(insights.id, app.id, roles.monitoringMetricsPublisher)
  scope: insights
  properties: {
    principalId: app.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}

resource appEventSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (enableLifecycleTopic) {
  name: guid(resourceGroup().id, app.id, roles.eventGridDataSender)
  scope: lifecycleTopic
  properties: {
    principalId: app.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventGridDataSender)
  }
}

module workspace 'workspace.bicep' = {
  name: 'safe-rollout-workspace-${token}'
  scope: resourceGroup(mlWorkspaceResourceGroup)
  params: {
    workspaceName: mlWorkspaceName
    appPrincipalId: app.identity.principalId
    functionAppId: app.id
    functionHostName: app.properties.defaultHostName
    logAnalyticsId: logs.id
    deadLetterStorageId: storage.id
    deadLetterContainer: deadLetterContainer
    existingSystemTopicName: existingSystemTopicName
    monitoredEndpoints: monitoredEndpoints
    alertSecret: alertSecret
    wireEvents: wireEvents
    enableAlerts: enableAlerts
    alertLatencyMs: alertLatencyMs
    alertErrorsPerMinute: alertErrorsPerMinute
    tags: tags
  }
}

// -- Private network: endpoints, DNS, Azure Monitor Private Link Scope (networkIsolation) ----------

module network 'network.bicep' = if (networkIsolation) {
  name: 'safe-rollout-network-${token}'
  params: {
    location: location
    tags: tags
    integrationSubnetId: integrationSubnetId
    privateEndpointSubnetId: privateEndpointSubnetId
    privateDnsZonesResourceGroup: privateDnsZonesResourceGroup
    privateDnsZonesSubscriptionId: privateDnsZonesSubscriptionId
    storageAccountId: storage.id
    enableLifecycleTopic: enableLifecycleTopic
    lifecycleTopicId: enableLifecycleTopic ? lifecycleTopic.id : ''
  }
}

// The workspace's zones (ARM-side names and the online endpoints' scoring names), linked to this VNet.
module mlDnsLinks 'dns-link.bicep' = [for (zoneId, i) in mlPrivateDnsZoneIds: if (networkIsolation) {
  name: 'safe-rollout-ml-dns-${i}-${token}'
  scope: resourceGroup(split(zoneId, '/')[2], split(zoneId, '/')[4])
  params: {
    zoneName: last(split(zoneId, '/'))
    virtualNetworkId: virtualNetworkId
    tags: tags
  }
}]

// Telemetry and log queries through the network's Azure Monitor Private Link Scope.
var monitorScopeParts = split(empty(monitorPrivateLinkScopeId) ? '////' : monitorPrivateLinkScopeId, '/')
module monitorScope 'monitor-scope.bicep' = if (networkIsolation && !empty(monitorPrivateLinkScopeId)) {
  name: 'safe-rollout-ampls-${token}'
  scope: resourceGroup(empty(monitorPrivateLinkScopeId) ? subscription().subscriptionId : monitorScopeParts[2], empty(monitorPrivateLinkScopeId) ? resourceGroup().name : monitorScopeParts[4])
  params: {
    scopeName: last(monitorScopeParts)
    linkedResourceIds: [ logs.id, insights.id ]
  }
}

// -- Prediction-comparison inputs: read access for the app's identity (when named) -----------------

var inputsParts = split(empty(predictionInputsStorageId) ? '////' : predictionInputsStorageId, '/')
module predictionInputsReader 'blob-reader.bicep' = if (!empty(predictionInputsStorageId)) {
  name: 'safe-rollout-inputs-reader-${token}'
  scope: resourceGroup(empty(predictionInputsStorageId) ? subscription().subscriptionId : inputsParts[2], empty(predictionInputsStorageId) ? resourceGroup().name : inputsParts[4])
  params: {
    storageAccountName: last(inputsParts)
    principalId: app.identity.principalId
  }
}

// Event Grid's system topic writes undeliverable events to the dead-letter container.
resource deadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, 'system-topic', roles.storageBlobDataContributor)
  scope: storage
  properties: {
    principalId: workspace.outputs.systemTopicPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
  }
}

// -- Notifications: the lifecycle topic's events go to the `notify` function (Teams, Slack) ---------

// Created on azd's second pass, like the ModelRegistered subscription: the function must exist.
// CloudEvents in, CloudEvents out (a topic with the CloudEvents input schema delivers only those).
// A notification a day late helps nobody: an hour of retries, then the dead-letter container.
resource notifications 'Microsoft.EventGrid/topics/eventSubscriptions@2022-06-15' = if (enableLifecycleTopic && wireEvents) {
  parent: lifecycleTopic
  name: 'safe-rollout-notify'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${app.id}/functions/notify'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'CloudEventSchemaV1_0'
    retryPolicy: {
      maxDeliveryAttempts: 10
      eventTimeToLiveInMinutes: 60
    }
    deadLetterWithResourceIdentity: {
      identity: { type: 'SystemAssigned' }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: storage.id
          blobContainerName: deadLetterContainer
        }
      }
    }
  }
}

// The lifecycle topic writes undeliverable notifications to the dead-letter container.
resource lifecycleDeadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (enableLifecycleTopic) {
  name: guid(storage.id, 'lifecycle-topic', roles.storageBlobDataContributor)
  scope: storage
  properties: {
    principalId: enableLifecycleTopic ? lifecycleTopic.identity.principalId : ''
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
  }
}

// -- Watching the app itself: a workbook and alert rules on its own log ------------------------------

// Rollouts in flight and recent, decisions over time, ticks, and a per-rollout drill-down, from the
// app's log lines in Application Insights (`rollout <id> [<endpoint>] <from> -> <to>: <reason>`).
resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, environmentName, 'safe-rollout-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'Safe Rollout (${environmentName})'
    category: 'workbook'
    sourceId: insights.id
    serializedData: replace(loadTextContent('workbook.json'), '__APP_INSIGHTS_ID__', insights.id)
  }
}

// Health alerts tell these people (when any are given); else they show in Azure Monitor only.
var notifyOps = enableHealthAlerts && !empty(opsAlertEmails)
var healthActions = notifyOps ? [ opsGroup.id ] : []
var healthMetricActions = notifyOps ? [ { actionGroupId: opsGroup.id } ] : []

resource opsGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (notifyOps) {
  name: 'ag-safe-rollout-ops'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'srops'
    enabled: true
    emailReceivers: [for (address, i) in opsAlertEmails: {
      name: 'ops-${i}'
      emailAddress: address
      useCommonAlertSchema: true
    }]
  }
}

// A tick that failed (the function threw) or that could not reconcile some rollouts (logged as
// `tick: ... N failed, ...`, each with its traceback in `exceptions`).
resource failedTicks 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = if (enableHealthAlerts) {
  name: 'safe-rollout-failed-ticks-${environmentName}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Safe Rollout: reconcile ticks failing'
    description: 'The reconcile timer failed, or could not reconcile some rollouts, in the last 15 minutes. Traces and exceptions of reconcile_timer say why.'
    severity: 2
    enabled: true
    scopes: [ insights.id ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: loadTextContent('queries/failed-ticks.kql')
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
        }
      ]
    }
    autoMitigate: true
    actions: { actionGroups: healthActions }
  }
}

// No tick at all for 15 minutes: the timer stopped (the app is down, or its host storage is not
// reachable for the timer's lease).
resource missingTicks 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = if (enableHealthAlerts) {
  name: 'safe-rollout-missing-ticks-${environmentName}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Safe Rollout: reconcile timer not running'
    description: 'No reconcile tick was logged in the last 15 minutes: rollouts are not being judged or moved.'
    severity: 1
    enabled: true
    scopes: [ insights.id ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: loadTextContent('queries/ticks.kql')
          timeAggregation: 'Count'
          operator: 'LessThan'
          threshold: 1
          failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
        }
      ]
    }
    autoMitigate: true
    actions: { actionGroups: healthActions }
  }
}

// A rollout started more than stuckAfterHours ago whose last logged decision is not final: the
// deadline should have rolled it back (or a person should have decided), so the app is not
// reaching it. One row per stuck rollout, split by rollout id and endpoint.
resource stuckRollouts 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = if (enableHealthAlerts) {
  name: 'safe-rollout-stuck-${environmentName}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Safe Rollout: a rollout is past its deadline'
    description: 'A rollout started more than ${stuckAfterHours} hours ago has not finished. Look at it: safe-rollout get <rolloutId>.'
    severity: 2
    enabled: true
    scopes: [ insights.id ]
    evaluationFrequency: 'PT1H'
    windowSize: 'P2D'
    criteria: {
      allOf: [
        {
          query: replace(loadTextContent('queries/stuck-rollouts.kql'), '__STUCK_AFTER__', '${stuckAfterHours}h')
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            { name: 'rolloutId', operator: 'Include', values: [ '*' ] }
            { name: 'endpoint', operator: 'Include', values: [ '*' ] }
          ]
          failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
        }
      ]
    }
    autoMitigate: true
    actions: { actionGroups: healthActions }
  }
}

// Events Event Grid gave up on (the function failed for 24 h, or a notification for an hour) land
// in the dead-letter container: Event Grid's DeadLetteredCount metric (Total, PT1M) tells at once.
resource lifecycleDeadLetters 'Microsoft.Insights/metricAlerts@2018-03-01' = if (enableHealthAlerts && enableLifecycleTopic) {
  name: 'safe-rollout-dead-letters-lifecycle-${environmentName}'
  location: 'global'
  tags: tags
  properties: {
    description: 'Lifecycle events (notifications) were dead-lettered to the ${deadLetterContainer} container.'
    severity: 3
    enabled: true
    scopes: [ lifecycleTopic.id ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'deadlettered'
          metricNamespace: 'Microsoft.EventGrid/topics'
          metricName: 'DeadLetteredCount'
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Total'
        }
      ]
    }
    actions: healthMetricActions
  }
}

resource modelEventDeadLetters 'Microsoft.Insights/metricAlerts@2018-03-01' = if (enableHealthAlerts) {
  name: 'safe-rollout-dead-letters-model-registered-${environmentName}'
  location: 'global'
  tags: tags
  properties: {
    description: 'ModelRegistered events were dead-lettered to the ${deadLetterContainer} container: the model_registered function failed for 24 h. Replay them (docs/OPERATIONS.md).'
    severity: 2
    enabled: true
    scopes: [ workspace.outputs.systemTopicId ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'deadlettered'
          metricNamespace: 'Microsoft.EventGrid/systemTopics'
          metricName: 'DeadLetteredCount'
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Total'
        }
      ]
    }
    actions: healthMetricActions
  }
}

output AZURE_FUNCTION_APP_NAME string = app.name
output SAFE_ROLLOUT_API string = 'https://${app.properties.defaultHostName}/api'
output SAFE_ROLLOUT_STORAGE_ACCOUNT string = storage.name
output SAFE_ROLLOUT_LOG_ANALYTICS_WORKSPACE_ID string = logs.properties.customerId
output SAFE_ROLLOUT_WORKBOOK_ID string = workbook.id
