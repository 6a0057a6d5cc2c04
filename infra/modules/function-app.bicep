// The verification Function App: Flex Consumption (FC1), Python 3.11, running as a user-assigned
// managed identity. The host storage connection is identity-based (AzureWebJobsStorage__*), the
// deployment package is pulled from a blob container with the same identity, and no key,
// connection string or publishing password exists anywhere.

@description('Name of the Function App (globally unique: it becomes <name>.azurewebsites.net).')
param name string

@description('Name of the Flex Consumption plan.')
param planName string

@description('Azure region (must offer Flex Consumption).')
param location string

@description('Tags applied to every resource.')
param tags object = {}

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string

@description('Client id of that identity (AZURE_CLIENT_ID and AzureWebJobsStorage__clientId).')
param identityClientId string

@description('Name of the host storage account (AzureWebJobsStorage__accountName).')
param hostStorageAccountName string

@description('Blob endpoint of the host storage account, with trailing slash.')
param hostStorageBlobEndpoint string

@description('Container in the host storage account that holds the deployment package.')
param deploymentContainerName string

@description('Application Insights connection string (ingestion endpoint; not a secret once local auth is disabled).')
param applicationInsightsConnectionString string

@description('Settings the verification code reads (AZURE_STORAGE_*, VERIFY_*).')
param appSettings object

@description('Upper bound on instances: verification is I/O-bound and rate-limited by storage, not CPU.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory per instance.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Optional subnet (delegated to Microsoft.App/environments) for VNet integration. Empty = none.')
param virtualNetworkSubnetId string = ''

// Flex Consumption: FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION must NOT be set here;
// the runtime comes from functionAppConfig.runtime.
var hostSettings = {
  AzureWebJobsStorage__accountName: hostStorageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AZURE_CLIENT_ID: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Zone redundancy on Flex Consumption is region-limited and bills always-ready instances; a missed daily verification run is caught up by the next one.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: Public network access stays on so the platform can deliver deployments and timer triggers without VNet integration (set virtualNetworkSubnetId to integrate); the app has no HTTP-triggered functions.
  // checkov:skip=CKV_AZURE_17: Client certificates protect inbound HTTP; the app has no HTTP-triggered functions.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero; a daily timer job that resumes where it stopped needs no standing failover instances.
  // checkov:skip=CKV_AZURE_213: Health checks probe an HTTP endpoint; a timer-only app has none (Durable Functions retries failed activities itself).
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityId
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
    siteConfig: {
      appSettings: [for setting in items(union(appSettings, hostSettings)): {
        name: setting.key
        value: setting.value
      }]
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostStorageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// No FTP or SCM basic-auth publishing credentials: deployments use Entra ID (az / func CLI).
resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = functionApp.name
output id string = functionApp.id
output defaultHostName string = functionApp.properties.defaultHostName
