//! The listening global default for tests that capture logs with scoped subscribers. Also
//! included by path in core's own integration tests (`tests/b24_support`), which build the library
//! without the `test-util` feature.

/// Makes scoped subscribers (`tracing::subscriber::set_default`) dependable in test binaries whose
/// tests run on parallel threads. Tracing caches, per callsite, whether anyone listens; between two
/// tests' scoped subscribers there may be none at all, and a callsite first hit then is cached as
/// "never" for everyone, so a test capturing logs sees nothing of it. A global default that listens
/// to nothing but answers "sometimes" keeps every callsite asking the current subscriber. Call it
/// before setting a scoped subscriber; it installs itself once per process.
pub fn listen_through_scoped_subscribers() {
    struct Quiet;
    impl tracing::Subscriber for Quiet {
        fn register_callsite(&self, _: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
            tracing::subscriber::Interest::sometimes()
        }
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            false
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, _: &tracing::Event<'_>) {}
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Another global default may already be set (then it decides, as before).
        let _ = tracing::dispatcher::set_global_default(tracing::Dispatch::new(Quiet));
    });
}
