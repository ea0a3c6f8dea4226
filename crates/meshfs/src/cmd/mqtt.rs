//! How a node reaches its MQTT broker, beside `--mqtt URL`: the TLS roots of an `mqtts://`
//! broker and the broker password (the user name is the URL's, `mqtt://USER@HOST`).

use std::path::PathBuf;

use anyhow::Context;
use meshfs_core::events::Events;
use meshfs_mqtt::{Bridge, BrokerAddr};

use crate::password;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct MqttConnArgs {
    /// Trust only the CA certificates in FILE (PEM) for an mqtts:// broker, instead of the
    /// system's roots (a broker with a certificate of its own, or of a private CA).
    #[arg(long, value_name = "FILE")]
    pub mqtt_ca: Option<PathBuf>,
    /// The broker password: the first line of FILE (kept out of the URL, which `ps` shows).
    /// The user name is the URL's: mqtt://USER@HOST.
    #[arg(long, value_name = "FILE")]
    pub mqtt_password_file: Option<PathBuf>,
}

impl MqttConnArgs {
    /// The bridge of node `node`'s `events` to `broker`, with these flags applied. Fails, before
    /// anything connects, on a password file that cannot be read or a CA file without
    /// certificates.
    pub fn bridge(&self, broker: BrokerAddr, node: &str, events: Events) -> anyhow::Result<Bridge> {
        let mut broker = broker;
        if let Some(file) = &self.mqtt_password_file {
            if broker.user.is_none() {
                anyhow::bail!(
                    "--mqtt-password-file needs a user name in the broker URL ({broker} names \
                     none): mqtt://USER@HOST"
                );
            }
            let password = password::from_file(file).with_context(|| {
                format!("cannot read the MQTT password from {}", file.display())
            })?;
            broker = broker.with_password(password.expose().to_owned());
        }
        if self.mqtt_ca.is_some() && !broker.tls {
            anyhow::bail!("--mqtt-ca is for mqtts:// brokers; {broker} is in clear");
        }
        let tls = broker.tls;
        let mut bridge = Bridge::new(broker, node, events);
        if tls {
            let config = meshfs_mqtt::client_config(self.mqtt_ca.as_deref())
                .context("cannot set up TLS to the MQTT broker")?;
            bridge = bridge.with_tls(config);
        }
        Ok(bridge)
    }
}
