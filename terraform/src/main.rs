//! `terraform-provider-kup`: kup as a Terraform/OpenTofu provider. Terraform starts it and
//! speaks plugin protocol v6 to it; the provider itself lives in the `kup-terraform` crate.

fn main() -> anyhow::Result<()> {
    kup_terraform::main()
}
