/**
 * The one entry point to the Rust core (native/, built with napi-rs). Everything in TypeScript
 * that needs a native mechanism imports it from here, so the binding is loaded in one place.
 */
export * from '#native';
