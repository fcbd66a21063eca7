//! `press`, like brpc's `rpc_press`: load-tests any unary method of any server from a `.proto`
//! file and JSON input, no code needed.
//!
//! ```text
//! press --proto examples/proto/echo.proto --method example.EchoService.Echo \
//!       --server 127.0.0.1:8000 --input requests.json --qps 1000 --duration 10 --concurrency 8
//! ```
//!
//! Prints a progress line to stderr each second and a summary to stdout at the end (or on
//! Ctrl-C). Exits 2 on bad arguments, 1 on other errors or when no call succeeded. The logic
//! lives in [`brisk_examples::press`].

use std::process::ExitCode;

use brisk_examples::press;

fn main() -> ExitCode {
    brisk_examples::init_logging();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{}", press::USAGE);
        return ExitCode::SUCCESS;
    }
    let options = match press::parse_args(args) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("press: {e}\n{}", press::USAGE);
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    match runtime.block_on(press::run_until(options, ctrl_c)) {
        Ok(report) => {
            print!("{report}");
            if report.succeeded == 0 {
                eprintln!("press: no call succeeded");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("press: {e}");
            ExitCode::FAILURE
        }
    }
}
