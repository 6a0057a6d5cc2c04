// AzPhotoSync cloud side, deployed into one resource group:
//
//   identity        user-assigned managed identity the Function App runs as
//   monitoring      Log Analytics + Application Insights (local auth disabled)
//   archive         hardened photo archive: data container, index table, reports container, runs table
//   host storage    the Function App's own storage (Durable task hub + deployment package)
//   function app    Flex Consumption (FC1), Python 3.11, timer-triggered Durable verification, and the
//                   gallery (HTTP, behind Entra ID sign-in: authsettingsV2)
//
// Every role assignment lives in the module that owns the resource it grants on; nothing is assigned
// at subscription or resource-group scope.
//
//   az deployment group create -g <rg> -f infra/main.bicep -p infra/main.parameters.json

targetScope = 'resourceGroup'

@description('Short lowercase prefix for resource names (letters and digits).')
@minLength(3)
@maxLength(10)
param namePrefix string = 'azphoto'

@description('Azure region for every resource (must offer Flex Consumption).')
param location string = resourceGroup().location

@description('Tags applied to every resource.')
param tags object = {
  application: 'azphotosync'
}

@description('Archive storage account name. Empty = derived from namePrefix and the resource group.')
param archiveStorageAccountName string = ''

@description('Redundancy of the archive storage account.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
])
param archiveSkuName string = 'Standard_GRS'

@description('Private container holding the photos.')
param dataContainerName string = 'photos-archive'

@description('Table index mirroring the agents\' SQLite state.')
param indexTableName string = 'azphotosyncindex'

@description('Container the verification writes reports to.')
param reportsContainerName string = 'azphotosync-reports'

@description('Table the verification records its runs in.')
param runsTableName string = 'azphotosyncruns'

@description('Days deleted/overwritten blobs and deleted containers stay restorable.')
@minValue(1)
@maxValue(365)
param softDeleteRetentionDays int = 30

@description('Version-level immutability (WORM) on the data container. Off by default: once a retention policy is locked, no one can delete the protected versions (nor the account) until they expire.')
param enableVersionLevelImmutability bool = false

@description('Default retention in days of each blob version when enableVersionLevelImmutability is true.')
@minValue(1)
@maxValue(146000)
param immutabilityPeriodDays int = 365

@description('Public IPs/CIDRs allowed to reach the archive. Empty (with allowedSubnetIds empty) = any network, identity still required.')
param allowedIpRanges array = []

@description('Subnet ids allowed to reach the archive (need the Microsoft.Storage service endpoint).')
param allowedSubnetIds array = []

@description('Optional subnet for the Function App\'s VNet integration (delegated to Microsoft.App/environments). It is added to the archive\'s allowed subnets. Required if you restrict the archive network.')
param functionSubnetId string = ''

@description('Object id of the identity the agent runs as (managed identity, workload identity app, service principal or user). Empty = grant nothing; grant it later as described in infra/README.md.')
param agentPrincipalId string = ''

@description('Kind of principal agentPrincipalId is.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param agentPrincipalType string = 'ServicePrincipal'

@description('Container of the WebP renditions (thumbnails) derived from the photos.')
param thumbnailsContainerName string = 'thumbnails'

@description('NCRONTAB schedule of the renditions (thumbnails) timer (six fields, UTC); after the verification.')
param thumbnailsSchedule string = '0 0 4 * * *'

@description('NCRONTAB schedule of the verification timer (six fields, UTC).')
param verifySchedule string = '0 0 3 * * *'

@description('Bytes a verification run may re-hash in full (deep verify), e.g. 2GiB.')
param verifyDeepBudget string = '2GiB'

@description('Lifecycle: days after creation an original moves to Cool (0 = never). Trade-offs in docs/tiering.md.')
@minValue(0)
param coolAfterDays int = 30

@description('Lifecycle: days after creation an original moves to Cold (0 = never).')
@minValue(0)
param coldAfterDays int = 180

@description('Lifecycle: days after creation an original moves to Archive. Off (0) by default: archived photos need hours of rehydration before a restore, cannot be deep-verified or thumbnailed, and leaving Archive within 180 days is charged as if kept 180 days.')
@minValue(0)
param archiveAfterDays int = 0

@description('Lifecycle: days after a blob becomes a previous version (replaced by a repair, or deleted) that the safety copy moves to Cold (0 = never).')
@minValue(0)
param versionColdAfterDays int = 7

@description('Lifecycle: days after which a previous version is deleted for good. 0 (default) keeps it, so a deleted photo stays recoverable.')
@minValue(0)
param versionDeleteAfterDays int = 0
@description('Client id of the Entra ID app registration for the gallery sign-in (see infra/README.md). Empty: no sign-in is configured; the gallery then serves share links only.')
param galleryClientId string = ''

@description('Who may open the gallery: comma-separated Entra object ids, user principal names or group object ids. Empty: nobody.')
param galleryAllowedPrincipals string = ''

@description('The library prefix the gallery shows (one device\'s prefix, e.g. photos/laptop).')
param galleryPrefix string = ''

@description('Maximum Flex Consumption instances.')
@minValue(40)
@maxValue(1000)
param functionMaximumInstanceCount int = 40

@description('Memory per Flex Consumption instance.')
@allowed([
  512
  2048
  4096
])
param functionInstanceMemoryMB int = 2048

@description('Days Log Analytics keeps telemetry.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, namePrefix))
var archiveName = empty(archiveStorageAccountName) ? take('st${namePrefix}arc${resourceToken}', 24) : archiveStorageAccountName
var hostStorageName = take('st${namePrefix}fn${resourceToken}', 24)
var functionAppName = 'func-${namePrefix}-${resourceToken}'
var deploymentContainerName = 'app-package-${take(resourceToken, 8)}'
var archiveSubnetIds = empty(functionSubnetId) ? allowedSubnetIds : concat(allowedSubnetIds, [
  functionSubnetId
])

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    name: 'id-${namePrefix}-func-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: 'log-${namePrefix}-${resourceToken}'
    applicationInsightsName: 'appi-${namePrefix}-${resourceToken}'
    location: location
    tags: tags
    retentionInDays: logRetentionDays
    publisherPrincipalId: identity.outputs.principalId
  }
}

module archive 'modules/archive-storage.bicep' = {
  name: 'archive'
  params: {
    name: archiveName
    location: location
    tags: tags
    skuName: archiveSkuName
    dataContainerName: dataContainerName
    indexTableName: indexTableName
    reportsContainerName: reportsContainerName
    runsTableName: runsTableName
    thumbnailsContainerName: thumbnailsContainerName
    deleteRetentionDays: softDeleteRetentionDays
    enableVersionLevelImmutability: enableVersionLevelImmutability
    immutabilityPeriodDays: immutabilityPeriodDays
    allowedIpRanges: allowedIpRanges
    allowedSubnetIds: archiveSubnetIds
    functionPrincipalId: identity.outputs.principalId
    agentPrincipalId: agentPrincipalId
    agentPrincipalType: agentPrincipalType
  }
}

// Originals age into cheaper tiers; renditions, the catalog, reports and the Table stay Hot.
module lifecycle 'modules/lifecycle.bicep' = {
  name: 'lifecycle'
  params: {
    storageAccountName: archive.outputs.name
    dataContainerName: archive.outputs.dataContainerName
    coolAfterDays: coolAfterDays
    coldAfterDays: coldAfterDays
    archiveAfterDays: archiveAfterDays
    versionColdAfterDays: versionColdAfterDays
    versionDeleteAfterDays: versionDeleteAfterDays
  }
}

module hostStorage 'modules/host-storage.bicep' = {
  name: 'host-storage'
  params: {
    name: hostStorageName
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    functionPrincipalId: identity.outputs.principalId
  }
}

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  params: {
    name: functionAppName
    planName: 'plan-${namePrefix}-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    hostStorageAccountName: hostStorage.outputs.name
    hostStorageBlobEndpoint: hostStorage.outputs.blobEndpoint
    deploymentContainerName: hostStorage.outputs.deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    maximumInstanceCount: functionMaximumInstanceCount
    instanceMemoryMB: functionInstanceMemoryMB
    virtualNetworkSubnetId: functionSubnetId
    galleryClientId: galleryClientId
    appSettings: {
      AZURE_STORAGE_ACCOUNT_URL: archive.outputs.blobEndpoint
      AZURE_STORAGE_TABLE_ENDPOINT: archive.outputs.tableEndpoint
      AZURE_STORAGE_CONTAINER: archive.outputs.dataContainerName
      AZURE_STORAGE_TABLE: archive.outputs.indexTableName
      VERIFY_SCHEDULE: verifySchedule
      VERIFY_DEEP_BUDGET: verifyDeepBudget
      VERIFY_REPORTS_CONTAINER: archive.outputs.reportsContainerName
      VERIFY_RUNS_TABLE: archive.outputs.runsTableName
      THUMBNAILS_SCHEDULE: thumbnailsSchedule
      AZURE_STORAGE_THUMBNAILS_CONTAINER: archive.outputs.thumbnailsContainerName
      GALLERY_ALLOWED_PRINCIPALS: galleryAllowedPrincipals
      GALLERY_PREFIX: galleryPrefix
    }
  }
}

// Feed these to the agent (environment variables of the same names).
output AZURE_STORAGE_ACCOUNT_URL string = archive.outputs.blobEndpoint
output AZURE_STORAGE_TABLE_ENDPOINT string = archive.outputs.tableEndpoint
output AZURE_STORAGE_CONTAINER string = archive.outputs.dataContainerName
output AZURE_STORAGE_TABLE string = archive.outputs.indexTableName
output AZURE_STORAGE_THUMBNAILS_CONTAINER string = archive.outputs.thumbnailsContainerName

// For operators: where to publish the app, and scopes for granting an agent identity later.
output FUNCTION_APP_NAME string = functionApp.outputs.name
output FUNCTION_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output ARCHIVE_STORAGE_ACCOUNT_NAME string = archive.outputs.name
output DATA_CONTAINER_RESOURCE_ID string = archive.outputs.dataContainerId
output INDEX_TABLE_RESOURCE_ID string = archive.outputs.indexTableId
output LIFECYCLE_SCHEDULE string = lifecycle.outputs.schedule
