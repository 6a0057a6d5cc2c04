// The Function App's user-assigned managed identity.
// User-assigned (not system-assigned) so that role assignments can be created before the app exists,
// and so that the same client id can be handed to DefaultAzureCredential via AZURE_CLIENT_ID.

@description('Name of the user-assigned managed identity.')
param name string

@description('Azure region.')
param location string

@description('Tags applied to the identity.')
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
