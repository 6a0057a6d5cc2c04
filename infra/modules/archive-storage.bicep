// The archive: the storage account that holds the photos, the Table index that mirrors the agents'
// SQLite state, the verification reports/runs, and the renditions (thumbnails) derived from the photos. Hardened (no keys, no anonymous access, TLS 1.2,
// OAuth by default), recoverable (blob + container soft delete, versioning, optional version-level
// immutability), and every data-plane role assignment on it is declared here, next to the
// container or table it grants on, scoped as narrowly as Azure RBAC allows.

@description('Globally unique name of the archive storage account (3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object = {}

@description('Redundancy of the archive. Geo-redundant by default: this is the only copy in the cloud.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
])
param skuName string = 'Standard_GRS'

@description('Default access tier for new blobs.')
@allowed([
  'Hot'
  'Cool'
])
param accessTier string = 'Hot'

@description('Private container holding the photos (AZURE_STORAGE_CONTAINER).')
param dataContainerName string

@description('Table index mirroring the agents\' SQLite state (AZURE_STORAGE_TABLE).')
param indexTableName string

@description('Container the verification writes its reports to (VERIFY_REPORTS_CONTAINER).')
param reportsContainerName string

@description('Table the verification records its runs in (VERIFY_RUNS_TABLE).')
param runsTableName string

@description('Container of the WebP renditions made from the photos (AZURE_STORAGE_THUMBNAILS_CONTAINER).')
param thumbnailsContainerName string

@description('Days a deleted or overwritten blob, and a deleted container, can be restored.')
@minValue(1)
@maxValue(365)
param deleteRetentionDays int

@description('Enable version-level immutability (WORM) on the data container. Off by default; see infra/README.md.')
param enableVersionLevelImmutability bool = false

@description('Default retention, in days, of every blob version when version-level immutability is on.')
@minValue(1)
@maxValue(146000)
param immutabilityPeriodDays int = 365

@description('Public IP addresses or CIDR ranges allowed to reach the account. Empty together with allowedSubnetIds = reachable from any network (identity is still required).')
param allowedIpRanges array = []

@description('Subnet resource ids (with the Microsoft.Storage service endpoint) allowed to reach the account.')
param allowedSubnetIds array = []

@description('Principal (object) id of the Function App identity (verification and renditions: read data, write index/reports/runs/thumbnails).')
param functionPrincipalId string

@description('Principal (object) id of the agent\'s identity. Empty = no agent role assignment is created.')
param agentPrincipalId string = ''

@description('Kind of principal agentPrincipalId is.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param agentPrincipalType string = 'ServicePrincipal'

// Built-in role definition ids (identical in every Azure tenant).
var storageBlobDataReaderRoleId = '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
var storageBlobDataContributorRoleId = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
var storageTableDataContributorRoleId = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'

var restrictNetwork = !empty(allowedIpRanges) || !empty(allowedSubnetIds)

resource archive 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_59: The agents run on home networks/NAS without a fixed address, so the public endpoint stays on; set allowedIpRanges/allowedSubnetIds to make networkAcls deny by default. Access always needs an Entra ID token (allowSharedKeyAccess=false).
  // checkov:skip=CKV_AZURE_35: Default action is Deny as soon as allowedIpRanges or allowedSubnetIds is given; the default (Allow) is what a home agent without a static IP needs. Shared keys and SAS are disabled, so the network is not the only barrier.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: accessTier
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowCrossTenantReplication: false
    publicNetworkAccess: 'Enabled'
    isHnsEnabled: false
    dnsEndpointType: 'Standard'
    networkAcls: {
      defaultAction: restrictNetwork ? 'Deny' : 'Allow'
      bypass: 'None'
      ipRules: [for ip in allowedIpRanges: {
        value: ip
        action: 'Allow'
      }]
      virtualNetworkRules: [for subnetId in allowedSubnetIds: {
        id: subnetId
        action: 'Allow'
      }]
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
  parent: archive
  name: 'default'
  properties: {
    isVersioningEnabled: true
    deleteRetentionPolicy: {
      enabled: true
      days: deleteRetentionDays
      allowPermanentDelete: false
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: deleteRetentionDays
    }
    changeFeed: {
      enabled: true
      retentionInDays: deleteRetentionDays
    }
  }
}

resource dataContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: dataContainerName
  properties: {
    publicAccess: 'None'
    immutableStorageWithVersioning: {
      enabled: enableVersionLevelImmutability
    }
  }
}

// Default version-level retention for the data container (only when immutability is enabled).
// Created unlocked: an operator can still shorten or delete it. Locking is a deliberate, irreversible
// manual step documented in infra/README.md.
resource dataRetention 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = if (enableVersionLevelImmutability) {
  parent: dataContainer
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: immutabilityPeriodDays
    allowProtectedAppendWrites: false
  }
}

resource reportsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: reportsContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Derived data only: deleting it loses no photo. Private like every container here.
resource thumbnailsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: thumbnailsContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: archive
  name: 'default'
}

resource indexTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: indexTableName
}

resource runsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: runsTableName
}

// ---- Function App identity (cloud verification) ---------------------------------------------------

// Read (and list) the photos: verification never writes to the data container.
resource functionReadsData 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(dataContainer.id, functionPrincipalId, storageBlobDataReaderRoleId)
  scope: dataContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataReaderRoleId)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Record verdicts (last verified, status) on the index rows.
resource functionWritesIndex 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(indexTable.id, functionPrincipalId, storageTableDataContributorRoleId)
  scope: indexTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributorRoleId)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Record each verification run.
resource functionWritesRuns 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(runsTable.id, functionPrincipalId, storageTableDataContributorRoleId)
  scope: runsTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributorRoleId)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Write verification reports.
resource functionWritesReports 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(reportsContainer.id, functionPrincipalId, storageBlobDataContributorRoleId)
  scope: reportsContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributorRoleId)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Write the renditions (create-only, enforced by the code); the photos themselves stay read-only above.
resource functionWritesThumbnails 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(thumbnailsContainer.id, functionPrincipalId, storageBlobDataContributorRoleId)
  scope: thumbnailsContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributorRoleId)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// ---- Agent identity (optional) ----------------------------------------------------------------------

// Upload photos (create-only / etag-conditional writes are enforced by the agent; soft delete and
// versioning make any overwrite or delete recoverable).
resource agentWritesData 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(agentPrincipalId)) {
  name: guid(dataContainer.id, agentPrincipalId, storageBlobDataContributorRoleId)
  scope: dataContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributorRoleId)
    principalId: agentPrincipalId
    principalType: agentPrincipalType
  }
}

// Mirror the local SQLite index and read back the cloud's verdicts.
resource agentWritesIndex 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(agentPrincipalId)) {
  name: guid(indexTable.id, agentPrincipalId, storageTableDataContributorRoleId)
  scope: indexTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributorRoleId)
    principalId: agentPrincipalId
    principalType: agentPrincipalType
  }
}

// Keep the gallery's catalog current after each sync (catalog/<prefix>.json.gz), and run `azphotosync
// thumbnails` and `azphotosync gallery` from the agent: the renditions and the catalog only, never a photo.
resource agentWritesThumbnails 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(agentPrincipalId)) {
  name: guid(thumbnailsContainer.id, agentPrincipalId, storageBlobDataContributorRoleId)
  scope: thumbnailsContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributorRoleId)
    principalId: agentPrincipalId
    principalType: agentPrincipalType
  }
}

// Read the verification reports (`azphotosync status`, and the deep-verify reference of `azphotosync
// verify`). Reading only: the reports are the cloud's, so a report written from a laptop never replaces the
// cloud's latest one; `azphotosync verify` run as the agent stores its verdicts in the index and shows its
// report, and says that the report was not stored (infra/README.md: how to let it publish).
resource agentReadsReports 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(agentPrincipalId)) {
  name: guid(reportsContainer.id, agentPrincipalId, storageBlobDataReaderRoleId)
  scope: reportsContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataReaderRoleId)
    principalId: agentPrincipalId
    principalType: agentPrincipalType
  }
}

output name string = archive.name
output id string = archive.id
output blobEndpoint string = archive.properties.primaryEndpoints.blob
output tableEndpoint string = archive.properties.primaryEndpoints.table
output dataContainerName string = dataContainer.name
output dataContainerId string = dataContainer.id
output indexTableName string = indexTable.name
output indexTableId string = indexTable.id
output reportsContainerName string = reportsContainer.name
output runsTableName string = runsTable.name
output thumbnailsContainerName string = thumbnailsContainer.name
