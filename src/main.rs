//! The `gatehouse` binary: installs the crypto provider and hands over to the CLI.

/// mimalloc unless built without the default `mimalloc` feature (Cargo.toml says why).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    gatehouse::install_crypto_provider();
    gatehouse::cli::main()
}
