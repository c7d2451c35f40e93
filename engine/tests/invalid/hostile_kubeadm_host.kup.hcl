provider "kubeadm" {}

cluster "lab" {
  kubeconfig = "~/.kube/lab.conf"
  version    = "1.31"
  control_plane {
    hosts = ["cp1; rm -rf /"]
  }
}
