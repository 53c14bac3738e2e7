//! The secret store: named secrets under the workspace state folder, mode 0600.
