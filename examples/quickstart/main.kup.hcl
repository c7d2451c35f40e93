# Quickstart: upgrade a simulated EKS cluster from 1.28 to 1.31.
# `simulate = true` starts kup's EKS simulator in-process; kup talks to it through the
# real AWS SDK, exactly as it would talk to Amazon EKS. The simulated world lives in
# .kup/sim/ (a copy of world.hcl), so a second run sees the upgraded cluster.

variable "target" {
  type        = string
  default     = "1.31"
  description = "Kubernetes minor to run everywhere"
}

provider "eks" {
  region   = "eu-west-1"
  simulate = true
  world    = "world.hcl"
}

cluster "prod" {
  name    = "prod-eu"
  version = var.target

  addon "coredns"    { version = "compatible" }
  addon "kube-proxy" { version = "compatible" }
  addon "vpc-cni"    { version = "compatible" }

  node_group "general" {
    version         = var.target
    strategy        = "rolling"
    max_unavailable = "25%"
  }

  # Replaced blue/green: a new group at the target version takes the pods, the old one
  # is deleted after the soak.
  node_group "payments" {
    version         = var.target
    strategy        = "blue_green"
    max_unavailable = 1
    blue_green {
      soak = "10m"
    }
    drain {
      timeout = "5m"
    }
  }
}
