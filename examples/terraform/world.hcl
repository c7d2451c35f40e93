# The simulated world of the Terraform example: one EKS cluster at 1.28. `kup sim serve`
# saves the world back to its file when it stops, so serve a copy.
cluster "prod-eu" {
  region  = "eu-west-1"
  version = "1.28"
  node_group "general" {
    version         = "1.28"
    min_size        = 2
    max_size        = 6
    desired_size    = 4
    max_unavailable = 1
  }
  node_group "payments" {
    version         = "1.28"
    min_size        = 1
    max_size        = 3
    desired_size    = 2
    max_unavailable = 1
  }
  addon "coredns"    { version = "v1.10.1-eksbuild.7" }
  addon "kube-proxy" { version = "v1.28.4-eksbuild.1" }
}
