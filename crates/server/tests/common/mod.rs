//! What more than one of the server's test files needs.

// Test code: an unwrap that fails is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use server::TokenFile;

/// The tokens of a cluster, kept in memory for one node, whose proof of holding every change
/// is as old as the test says.
#[derive(Debug, Default)]
pub struct SharedTokensOfOneNode {
    pub node: std::sync::Mutex<std::sync::Weak<TokenFile>>,
    pub unconfirmed: std::sync::Mutex<Option<std::time::Duration>>,
}

impl server::auth::SharedTokens for SharedTokensOfOneNode {
    fn put(&self, token_id: &str, record: Vec<u8>) -> std::io::Result<()> {
        self.node.lock().unwrap().upgrade().unwrap().apply_shared(token_id, Some(&record));
        Ok(())
    }

    fn remove(&self, token_id: &str) -> std::io::Result<()> {
        self.node.lock().unwrap().upgrade().unwrap().apply_shared(token_id, None);
        Ok(())
    }

    fn claim_first_start(&self) -> std::io::Result<bool> {
        Ok(false)
    }

    fn unconfirmed_for(&self) -> Option<std::time::Duration> {
        *self.unconfirmed.lock().unwrap()
    }
}

impl SharedTokensOfOneNode {
    /// The tokens of a node on them, in `dir`, proven current a moment ago.
    pub fn node(self: &Arc<Self>, dir: &std::path::Path) -> Arc<TokenFile> {
        *self.unconfirmed.lock().unwrap() = Some(std::time::Duration::ZERO);
        let tokens = Arc::new(TokenFile::shared(dir, self.clone()));
        *self.node.lock().unwrap() = Arc::downgrade(&tokens);
        tokens
    }

    /// Sets how long ago the node last proved its tokens current.
    pub fn proven(&self, ago: std::time::Duration) {
        *self.unconfirmed.lock().unwrap() = Some(ago);
    }
}
