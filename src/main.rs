//! The `gatehouse` binary: installs the crypto provider and hands over to the CLI.

fn main() -> std::process::ExitCode {
    gatehouse::install_crypto_provider();
    gatehouse::cli::main()
}
