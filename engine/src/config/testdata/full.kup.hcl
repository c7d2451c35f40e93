# A realistic configuration: two providers, a variable with validation, locals and
# functions, every cluster and node-group setting.

variable "target" {
  type        = string
  default     = "1.31"
  description = "Kubernetes minor every cluster moves to"

  validation {
    condition     = can(regex("^1\\.[0-9]+$", var.target))
    error_message = "target must look like 1.31"
  }
}

variable "regions" {
  type    = list(string)
  default = ["eu-west-1", "us-east-1"]
}

variable "surge" {
  type    = number
  default = 2
}

locals {
  env    = "prod"
  prefix = "${upper(local.env)}-${length(var.regions)}"
}

locals {
  cluster_name = format("%s-%s", lower(local.prefix), split("-", var.regions[0])[0])
}

provider "eks" {
  region        = var.regions[0]
  profile       = "prod"
  simulate      = true
  speed         = 600
  poll_interval = "15s"
}

provider "eks" {
  alias    = "us"
  region   = var.regions[1]
  endpoint = "http://127.0.0.1:4566"
}

cluster "prod" {
  provider             = "eks"
  name                 = local.cluster_name
  version              = var.target
  kubeconfig           = "~/.kube/config"
  context              = "prod"
  parallel_node_groups = 2

  addon "coredns" { version = "compatible" }
  addon "kube-proxy" { version = "latest" }
  addon "vpc-cni" { version = "v1.18.3-eksbuild.1" }

  node_group "general" {
    version         = var.target
    strategy        = "rolling"
    max_unavailable = "25%"
    max_surge       = var.surge

    drain {
      timeout                      = "10m"
      grace_period                 = "30s"
      delete_emptydir_data         = true
      force                        = false
      pod_selector                 = "app!=batch"
      skip_wait_for_delete_timeout = "1m"
      disable_eviction             = false
    }
  }

  node_group "payments" {
    version         = "1.29"
    strategy        = "blue_green"
    max_unavailable = 3

    blue_green {
      soak       = "1h30m"
      batch_soak = "5m"
    }
  }
}

cluster "us" {
  provider = "eks.us"
  version  = "1.30.4"

  node_group "default" {}
}
