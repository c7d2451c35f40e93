# kup as a Terraform provider, against kup's simulator:
#
#   cargo build -p kup -p kup-terraform   # kup and terraform-provider-kup, in target/debug
#   cp world.hcl /tmp/world.hcl   # the simulator writes kubeconfigs beside its world
#   ../../target/debug/kup sim serve --world /tmp/world.hcl &   # prints {"eks": "http://127.0.0.1:PORT", ...}
#   export TF_CLI_CONFIG_FILE=$PWD/terraform.rc
#   terraform plan  -var endpoint=http://127.0.0.1:PORT    # kup's plan: planned_steps, version_timeline
#   terraform apply -var endpoint=http://127.0.0.1:PORT    # kup's executor upgrades 1.28 → 1.30
#   terraform plan  -var endpoint=http://127.0.0.1:PORT    # No changes.
#
# Against real EKS, drop endpoint and simulate: credentials come from the AWS default chain.

terraform {
  required_providers {
    kup = { source = "kup/kup" }
  }
}

variable "endpoint" {
  type        = string
  description = "The URL `kup sim serve` printed as \"eks\""
}

variable "target" {
  type    = string
  default = "1.30"
}

provider "kup" {
  eks {
    region        = "eu-west-1"
    endpoint      = var.endpoint
    simulate      = true # the endpoint is kup's simulator: its time runs `speed` times faster
    speed         = 600
    poll_interval = "1s"
  }
}

resource "kup_cluster" "prod" {
  name    = "prod-eu"
  version = var.target

  addon {
    name    = "coredns"
    version = "compatible"
  }
  addon {
    name    = "kube-proxy"
    version = "compatible"
  }

  node_group {
    name            = "general"
    max_unavailable = "25%"
  }
  node_group {
    name     = "payments"
    strategy = "rolling"
    drain {
      timeout              = "10m"
      delete_emptydir_data = true
    }
  }
}

# Versions the provider offers for this cluster, with the end of support kup plans against.
data "kup_versions" "prod" {
  cluster = kup_cluster.prod.name
}

output "offered" {
  value = [for v in data.kup_versions.prod.versions : "${v.version} (${v.support}: ${v.end_of_support})"]
}
