//! `init_tracing` installs the global subscriber once (its own test binary).

#[tokio::test]
async fn init_tracing_without_otlp_installs_once() {
    // SAFETY: no other thread of this test binary reads the environment.
    unsafe { std::env::remove_var("OTEL_EXPORTER_OTLP_ENDPOINT") };
    let guard = authz_pdp::telemetry::init_tracing("authz-pdp-test").unwrap();
    assert!(!guard.exports_otlp());
    tracing::info!("logged through the installed subscriber");
    assert!(authz_pdp::telemetry::init_tracing("again").is_err());
    guard.shutdown();
}
