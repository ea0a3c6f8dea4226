//! The client side of `assign`: point any command at a master and it talks to a worker.
//!
//! [`follow`] says `hello` to the node a URL names; if the answer carries `role=cluster`, it
//! asks for `assign` and returns the worker's URL (same path) and a connection to it. Plain nodes
//! cost nothing extra: the connection that said `hello` is returned for reuse.

use meshfs_core::{Client, ClientError, Credentials, RemotePath};

use crate::ROLE_CLUSTER;

#[derive(Debug, thiserror::Error)]
pub enum AssignError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the cluster master at {master} has no healthy worker ({message})")]
    NoWorker { master: String, message: String },
    #[error("the cluster master at {master} answered assign with {answer:?}")]
    BadAnswer { master: String, answer: String },
}

/// Connect to the node `url` names, or to the worker its master assigns, proving `credentials`
/// to each (a cluster's workers share one password); returns the URL that was finally reached
/// and a connection to it on which `hello` was said.
pub async fn follow(
    url: &RemotePath,
    credentials: &Credentials,
) -> Result<(RemotePath, Client), AssignError> {
    let mut client = Client::connect_with(&url.addr, credentials).await?;
    client.send("hello");
    let hello = client.status().await?;
    if !hello.split(' ').any(|w| w == ROLE_CLUSTER) {
        return Ok((url.clone(), client));
    }
    client.send("assign");
    let worker = match client.status().await {
        Ok(addr) => addr,
        Err(ClientError::Remote { message, .. }) => {
            return Err(AssignError::NoWorker {
                master: url.addr.clone(),
                message,
            });
        }
        Err(e) => return Err(e.into()),
    };
    let _ = client.quit().await;
    let bad = || AssignError::BadAnswer {
        master: url.addr.clone(),
        answer: worker.clone(),
    };
    if worker.is_empty() || worker.contains(['/', ' ']) {
        return Err(bad());
    }
    let assigned: RemotePath = format!("meshfs://{worker}/{}", url.path)
        .parse()
        .map_err(|_| bad())?;
    tracing::debug!(master = %url.addr, worker = %assigned.addr, "assigned");
    let mut client = Client::connect_with(&assigned.addr, credentials).await?;
    client.hello().await?;
    Ok((assigned, client))
}
