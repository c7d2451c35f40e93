# The simulated AWS account the quickstart upgrades.
cluster "prod-eu" {
  region  = "eu-west-1"
  version = "1.28"

  node_group "general" {
    version         = "1.28"
    instance_types  = ["m5.large"]
    min_size        = 3
    max_size        = 9
    desired_size    = 6
    max_unavailable = 1
  }

  node_group "payments" {
    version         = "1.28"
    instance_types  = ["m5.xlarge"]
    min_size        = 2
    max_size        = 4
    desired_size    = 2
    max_unavailable = 1
  }

  addon "coredns"    { version = "v1.10.1-eksbuild.7" }
  addon "kube-proxy" { version = "v1.28.4-eksbuild.1" }
  addon "vpc-cni"    { version = "v1.16.0-eksbuild.1" }
}
