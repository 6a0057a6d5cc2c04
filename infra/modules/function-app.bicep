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

@description('Client id of the Entra ID app registration that signs gallery users in (App Service authentication). Empty: no sign-in is configured and the gallery answers 401 to every signed-in view (share links still work).')
param galleryClientId string = ''

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
  // checkov:skip=CKV_AZURE_222: Public network access stays on: the gallery is opened from browsers anywhere (behind Entra ID sign-in) and share links are opened by people without an account; set virtualNetworkSubnetId to integrate the app's outbound traffic.
  // checkov:skip=CKV_AZURE_17: Client certificates cannot be presented by the browsers of signed-in users or share-link guests; Entra ID sign-in (authsettingsV2 below) guards every view except share links, which are expiring hashed-token capabilities.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero; a daily timer job that resumes where it stopped needs no standing failover instances, and a cold gallery request only waits for one instance to start.
  // checkov:skip=CKV_AZURE_213: Health checks probe an HTTP endpoint and remove unhealthy instances of always-on plans; Flex Consumption instances are started per request and Durable Functions retries failed activities itself.
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

// The gallery's sign-in: App Service authentication with Entra ID in front of every request. Unauthenticated
// requests get 401 (never a redirect loop for API calls; the page links to /.auth/login/aad). Share links (/s/…)
// and the static files their page loads are excluded: a share is its own capability, checked by the app.
// The app additionally checks the principal against GALLERY_ALLOWED_PRINCIPALS and trusts the principal
// headers only when the platform says authentication is on (WEBSITE_AUTH_ENABLED).
resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = if (!empty(galleryClientId)) {
  // checkov reads every Microsoft.Web/sites/config child as a whole site configuration; these site-level
  // checks do not apply to the authsettingsV2 document (each is decided on the site above):
  // checkov:skip=CKV_AZURE_13: This resource IS the App Service authentication (Entra ID, requireAuthentication, Return401); checkov looks for it as a site property.
  // checkov:skip=CKV_AZURE_63: HTTP logging is a siteConfig setting of the site, not of its authsettingsV2 document; requests are logged by Application Insights.
  // checkov:skip=CKV_AZURE_65: Detailed error messages are a siteConfig setting of the site, not of its authsettingsV2 document.
  // checkov:skip=CKV_AZURE_66: Failed request tracing is a siteConfig setting of the site, not of its authsettingsV2 document; failures reach Application Insights.
  // checkov:skip=CKV_AZURE_80: .NET Framework version concerns Windows .NET sites; this is a Linux Python app and an authsettingsV2 document.
  // checkov:skip=CKV_AZURE_88: Azure Files mounts are a site setting; the app keeps no files (its data is in Blob and Table storage).
  // checkov:skip=CKV_AZURE_222: Public network access is decided on the site above (justified there); an authsettingsV2 document has no network setting.
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      excludedPaths: [
        '/s'
        '/static'
      ]
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: galleryClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${subscription().tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            'api://${galleryClientId}'
            galleryClientId
          ]
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
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
