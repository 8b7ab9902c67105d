//! Namespaces made ready before a test writes.

use memory_contract::{NamespaceKind, NamespaceUpsert};
use memory_plugin::store::Store;

/// Creates every namespace of `names` as `kind`, with no expiry and no
/// metadata.
pub async fn create<N: AsRef<str>>(
    store: &dyn Store,
    kind: NamespaceKind,
    names: impl IntoIterator<Item = N>,
) {
    for name in names {
        store
            .upsert_namespace(
                name.as_ref(),
                &NamespaceUpsert {
                    kind,
                    expires_at: None,
                    metadata: None,
                },
            )
            .await
            .expect("create namespace");
    }
}
