# Upgrade real EKS clusters. Credentials come from the AWS default chain
# (AWS_PROFILE, environment variables, SSO, instance roles); `profile` picks one.
#
#   kup plan -out upgrade.kupplan examples/eks     # on a pull request
#   kup apply upgrade.kupplan                      # on merge, exactly that plan

variable "target" {
  type        = string
  default     = "1.31"
  description = "Kubernetes minor every cluster should run"

  validation {
    condition     = can(regex("^1\\.[0-9]+$", var.target))
    error_message = "target must be a Kubernetes minor such as 1.31"
  }
}

locals {
  addons = "compatible"
}

provider "eks" {
  region  = "eu-west-1"
  profile = "platform-admin"
}

provider "eks" {
  alias  = "us"
  region = "us-east-1"
}

cluster "prod_eu" {
  provider = "eks"
  name     = "prod-eu"
  version  = var.target

  addon "coredns"    { version = local.addons }
  addon "kube-proxy" { version = local.addons }
  addon "vpc-cni"    { version = "latest" }

  node_group "general" {
    version         = var.target
    max_unavailable = "25%"
  }

  # Batch nodes may trail the control plane; kup rolls them only when the skew policy
  # forces it.
  node_group "batch" {
    version         = "1.29"
    max_unavailable = 2
  }
}

cluster "prod_us" {
  provider             = "eks.us"
  name                 = "prod-us"
  version              = var.target
  parallel_node_groups = 2

  # Safety: objects still at an API a hop removes (in these manifests, or found in the
  # cluster through last-applied annotations, managedFields and Helm releases) refuse that
  # hop, as do a failing /readyz, NotReady nodes and EKS upgrade insights in ERROR.
  # `kup check examples/eks` runs the same checks on their own.
  preflight {
    manifests    = ["k8s"]
    removed_apis = "block"
    health       = "block"
    insights     = "warn"
  }

  # After the last step: nodes Ready at the new version, every workload available as
  # before, no new Pending pods, and a pod that must start, run and be removed.
  postflight {
    smoke_pod = true
    timeout   = "15m"
  }

  # The team's own checks: a smoke test after every control-plane hop (a failure stops the
  # apply there; the next apply goes on once it passes), a load test at the end. Each runs
  # on the machine running kup with KUP_HOOK, KUP_CLUSTER, KUP_FROM_VERSION, KUP_TO_VERSION,
  # KUP_NODE_GROUP and KUBECONFIG set.
  hook "after_control_plane" {
    command = ["./scripts/smoke-test.sh", "--endpoint", "https://shop.example.com/healthz"]
    timeout = "5m"
  }
  hook "after_cluster" {
    command = ["k6", "run", "scripts/checkout.js"]
    timeout = "15m"
  }

  node_group "general" {
    version         = var.target
    max_unavailable = "20%"
  }
  node_group "system" {
    version = var.target
  }
}
