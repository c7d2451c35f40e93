variable "target" {
  type    = string
  default = "131"
  validation {
    condition     = can(regex("^1\\.[0-9]+$", var.target))
    error_message = "target must look like 1.31"
  }
}

provider "eks" {
  region = "eu-west-1"
}

cluster "prod" {
  version = var.target
}
