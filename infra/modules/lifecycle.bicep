// Lifecycle tiering of the archive: originals are written once and read rarely, so they move to cheaper
// tiers as they age. Only the data container is tiered: renditions, the gallery catalog, reports and the
// Table stay Hot (they are small and read on every page view or verification run). docs/tiering.md
// explains what each tier means for backup, verification, thumbnails and restore, with a worked example.
//
// Ages count from the blob's creation: the agent writes each original once and never modifies it, so
// creation age is content age. (Modification age would be the same, and last-access tracking costs a
// write per read and would send a blob back to Hot after every deep verification.)

@description('Name of the existing archive storage account.')
param storageAccountName string

@description('Container holding the originals (AZURE_STORAGE_CONTAINER); nothing else is tiered.')
param dataContainerName string

@description('Days after creation an original moves to Cool. Cool stores for roughly half of Hot and bills reads per GB and a 30-day early-deletion minimum; photos older than a month are rarely read. 0 = never.')
@minValue(0)
param coolAfterDays int = 30

@description('Days after creation an original moves to Cold. Cold stores for roughly a fifth of Hot, bills reads at about three times Cool and has a 90-day minimum: right for the bulk of a library that is only restored or deep-verified. 0 = never.')
@minValue(0)
param coldAfterDays int = 180

@description('Days after creation an original moves to Archive. OFF by default (0): archived blobs cannot be read until rehydrated (up to 15 hours, charged per GB), deep verification cannot re-hash them, thumbnails cannot be made from them, and moving out before 180 days is charged as if kept 180 days. See docs/tiering.md before enabling.')
@minValue(0)
param archiveAfterDays int = 0

@description('Days after becoming a previous version (a blob replaced by a repair, or deleted) that the safety copy moves to Cold. Safety copies are almost never read, so they tier sooner than originals.')
@minValue(0)
param versionColdAfterDays int = 7

@description('Days after becoming a previous version that the safety copy is deleted for good. 0 = kept (default): a deleted photo stays recoverable from its version. Set it only together with a retention you are comfortable losing; version-level immutability blocks it while a retention applies.')
@minValue(0)
param versionDeleteAfterDays int = 0

resource archive 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

var cool = (coolAfterDays > 0) ? {
  tierToCool: {
    daysAfterCreationGreaterThan: coolAfterDays
  }
} : {}
var cold = (coldAfterDays > 0) ? {
  tierToCold: {
    daysAfterCreationGreaterThan: coldAfterDays
  }
} : {}
// daysAfterLastTierChangeGreaterThan keeps a rehydrated blob online for a week before it is archived again,
// so a restore that asked for rehydration can finish.
var archiveTier = (archiveAfterDays > 0) ? {
  tierToArchive: {
    daysAfterCreationGreaterThan: archiveAfterDays
    daysAfterLastTierChangeGreaterThan: 7
  }
} : {}
var versionCold = (versionColdAfterDays > 0) ? {
  tierToCold: {
    daysAfterCreationGreaterThan: versionColdAfterDays
  }
} : {}
var versionDelete = (versionDeleteAfterDays > 0) ? {
  delete: {
    daysAfterCreationGreaterThan: versionDeleteAfterDays
  }
} : {}

var originalsRule = {
  name: 'originals-age-to-cooler-tiers'
  enabled: true
  type: 'Lifecycle'
  definition: {
    filters: {
      blobTypes: [
        'blockBlob'
      ]
      prefixMatch: [
        '${dataContainerName}/'
      ]
    }
    actions: {
      baseBlob: union(cool, cold, archiveTier)
    }
  }
}

var safetyCopiesRule = {
  name: 'safety-copies-to-cold'
  enabled: true
  type: 'Lifecycle'
  definition: {
    filters: {
      blobTypes: [
        'blockBlob'
      ]
      prefixMatch: [
        '${dataContainerName}/'
      ]
    }
    actions: {
      version: union(versionCold, versionDelete)
      snapshot: union(versionCold, versionDelete)
    }
  }
}

var tiersOriginals = coolAfterDays > 0 || coldAfterDays > 0 || archiveAfterDays > 0
var tiersCopies = versionColdAfterDays > 0 || versionDeleteAfterDays > 0

resource policy 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = if (tiersOriginals || tiersCopies) {
  parent: archive
  name: 'default'
  properties: {
    policy: {
      rules: concat((tiersOriginals) ? [
        originalsRule
      ] : [], (tiersCopies) ? [
        safetyCopiesRule
      ] : [])
    }
  }
}

@description('The tiering schedule in force, for operators (and docs/tiering.md\'s worked example).')
output schedule string = 'originals: Cool after ${coolAfterDays} d, Cold after ${coldAfterDays} d, Archive after ${archiveAfterDays} d (0 = never); previous versions: Cold after ${versionColdAfterDays} d, deleted after ${versionDeleteAfterDays} d (0 = kept)'
