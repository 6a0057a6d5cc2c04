// The Function App's own host storage account (Durable Functions task hub, timer leases, and the
// Flex Consumption deployment package), kept separate from the archive so that a bug or a
// compromise of the host never touches photos. Reached only with the app's managed identity.
// The host roles are granted here, next to the account, and on this account only.

@description('Globally unique name of the host storage account (3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object = {}

@description('Container the Flex Consumption platform deploys the app package from.')
param deploymentContainerName string

@description('Days a deleted blob or container in the host account can be restored.')
@minValue(1)
@maxValue(365)
param deleteRetentionDays int = 7

@description('Principal (object) id of the Function App identity.')
param functionPrincipalId string

// Built-in role definition ids. Durable Functions needs blob (leases, large messages), queue
// (control/work-item queues) and table (history/instances) data access on its task hub account.
var storageBlobDataOwnerRoleId = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageQueueDataContributorRoleId = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageTableDataContributorRoleId = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'

resource host 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_59: A Flex Consumption app without VNet integration reaches its host storage over the public endpoint; every request still needs the app's Entra ID token (allowSharedKeyAccess=false).
  // checkov:skip=CKV_AZURE_35: Same reason as CKV_AZURE_59: without VNet integration the Functions platform cannot reach a Deny-by-default account.
  // checkov:skip=CKV_AZURE_206: Host state (task hub, leases, deployment package) is rebuildable; LRS is the documented choice for Functions host storage.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowCrossTenantReplication: false
    publicNetworkAccess: 'Enabled'
    dnsEndpointType: 'Standard'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: host
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: deleteRetentionDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: deleteRetentionDays
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource hostBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(host.id, functionPrincipalId, storageBlobDataOwnerRoleId)
  scope: host
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwnerRoleId)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource hostQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(host.id, functionPrincipalId, storageQueueDataContributorRoleId)
  scope: host
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributorRoleId)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource hostTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(host.id, functionPrincipalId, storageTableDataContributorRoleId)
  scope: host
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributorRoleId)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output name string = host.name
output id string = host.id
output blobEndpoint string = host.properties.primaryEndpoints.blob
output deploymentContainerName string = deploymentContainer.name
