# Upgrade a real AKS cluster. Credentials, tried in this order: an environment service
# principal (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET), workload identity
# (AZURE_FEDERATED_TOKEN_FILE), the Azure CLI (`az login`), managed identity.
#
#   kup plan -out upgrade.kupplan examples/aks/production
#   kup apply upgrade.kupplan

variable "target" {
  type    = string
  default = "1.31"
}

provider "aks" {
  subscription_id = "11111111-2222-3333-4444-555555555555"
  resource_group  = "rg-platform-prod"
  # api_version = "2026-10-01"   # the default: a stable api-version kup is tested with
}

cluster "prod" {
  name    = "aks-prod-weu"
  version = var.target

  node_group "system" {
    version         = var.target
    max_unavailable = 0
    max_surge       = 1
  }

  node_group "user" {
    version         = var.target
    max_unavailable = 0
    max_surge       = "33%"   # what AKS recommends for production
    drain {
      timeout = "30m"         # drainTimeoutInMinutes
    }
  }
}
