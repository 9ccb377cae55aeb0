use clap::Parser;
use spot_connect::cli::{Cli, Command, exit};
use spot_connect::{app, commands, docgen, logging, sim};
use std::io::Write;

fn main() {
    let cli = Cli::parse();
    // Generated text on stdout: no state directory, log or runtime needed.
    if let Some(c @ (Command::Completions { .. } | Command::Man)) = &cli.command {
        let mut out = std::io::stdout().lock();
        let written = match c {
            Command::Completions { shell } => docgen::write_completions(*shell, &mut out),
            _ => docgen::write_man_page(&mut out),
        };
        if let Err(e) = written.and_then(|()| out.flush()) {
            eprintln!("spot-connect: cannot write to stdout: {e}");
            std::process::exit(exit::FAILED);
        }
        return;
    }
    let state_dir = cli.opts.state_dir();
    if let Err(e) = logging::init(&state_dir) {
        eprintln!(
            "spot-connect: cannot open the log under {}: {e}",
            state_dir.display()
        );
        std::process::exit(exit::FAILED);
    }
    spot_connect::http::install_crypto_provider();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("spot-connect: cannot start the runtime: {e}");
            std::process::exit(exit::FAILED);
        }
    };
    let code = rt.block_on(async {
        match &cli.command {
            None => app::run(&cli).await,
            Some(Command::Apply) => commands::apply(&cli).await,
            Some(Command::Plan) => commands::plan(&cli).await,
            Some(Command::Status) => commands::status::status(&cli).await,
            Some(Command::RotateSecret) => commands::rotate::rotate_secret(&cli).await,
            Some(Command::Remove(o)) => commands::remove::remove(&cli, o).await,
            Some(Command::Sim(o)) => match sim::run_cli(o.clone(), state_dir.clone()).await {
                Ok(()) => exit::DONE,
                Err(e) => {
                    eprintln!("spot-connect sim: {e}");
                    exit::FAILED
                }
            },
            Some(Command::Completions { .. } | Command::Man) => unreachable!("handled above"),
        }
    });
    // Do not wait for background tasks (e.g. a device-code poll) to finish.
    rt.shutdown_background();
    std::process::exit(code);
}
