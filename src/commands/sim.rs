//! `kup sim serve`: run the simulated world until killed, printing its endpoints.

use std::process::ExitCode;

use crate::cli::SimServeArgs;
use crate::failure::{Failure, Result};

pub async fn serve(args: SimServeArgs) -> Result<ExitCode> {
    let faults = match &args.faults {
        Some(s) => kup_sim::FaultSpec::parse(s).map_err(Failure::Message)?,
        None => kup_sim::FaultSpec::none(),
    };
    if args.speed.is_nan() || args.speed <= 0.0 {
        return Err(Failure::Message("--speed must be greater than 0".into()));
    }
    let sim = kup_sim::Sim::start(kup_sim::SimConfig {
        world: args.world.clone(),
        listen: args.listen,
        speed: args.speed,
        faults,
    })
    .await
    .map_err(|e| Failure::Message(format!("{e:#}")))?;
    let ep = sim.endpoints();
    println!(
        "{}",
        serde_json::json!({
            "eks": ep.eks,
            "admin": ep.admin,
            "kube": ep.kube,
            "kubeconfigs": ep.kubeconfigs,
            "pid": std::process::id(),
            "world": args.world,
        })
    );
    crate::interrupt::wait_for_stop().await;
    sim.shutdown()
        .await
        .map_err(|e| Failure::Message(format!("saving the world failed: {e:#}")))?;
    Ok(ExitCode::SUCCESS)
}
