provider "openstack" {
  region = "regionOne"
}

cluster "prod" {
  version = "1.31"
}
