//! One order, start to finish: new order, publish each challenge answer,
//! wait for validation, finalize with a fresh ECDSA P-256 key and our own
//! CSR, download the chain. Answers are withdrawn however it ends.

use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewOrder, Order, OrderStatus, RetryPolicy,
};

use crate::certificate::Certificate;
use crate::challenges::Challenges;
use crate::error::{AcmeError, Problem};
use crate::fleet::{CHALLENGE_SPREAD, Spread};
use crate::kind::ChallengeKind;

/// Orders a certificate for `names` and returns it, checked. With
/// `spread` (edge mode), the challenge answers go to the whole fleet,
/// since the ACME server's validation may reach any instance.
pub(crate) async fn order(
    account: &Account,
    challenges: &Arc<Challenges>,
    spread: Option<Spread>,
    kind: ChallengeKind,
    names: &[String],
    timeout: Duration,
) -> Result<Certificate, AcmeError> {
    let identifiers: Vec<Identifier> = names.iter().map(|n| Identifier::Dns(n.clone())).collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(AcmeError::acme("new order"))?;
    let mut published = Published {
        challenges: challenges.clone(),
        http: Vec::new(),
        alpn: Vec::new(),
        spread,
    };
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(AcmeError::acme("authorization"))?;
        match authz.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            other => {
                return Err(AcmeError::Protocol {
                    during: "authorization",
                    reason: format!("{} is {other:?}", authz.identifier()),
                });
            }
        }
        let name = authz.identifier().to_string();
        let challenge_type = match kind {
            ChallengeKind::Http01 => ChallengeType::Http01,
            ChallengeKind::TlsAlpn01 => ChallengeType::TlsAlpn01,
        };
        let mut challenge = authz.challenge(challenge_type).ok_or_else(|| AcmeError::NoChallenge {
            name: name.clone(),
            kind,
        })?;
        let key_authorization = challenge.key_authorization();
        match kind {
            ChallengeKind::Http01 => {
                challenges.publish_http01(&challenge.token, key_authorization.as_str());
                published.http.push(challenge.token.clone());
                if let Some(spread) = &published.spread {
                    spread.http01(&challenge.token, key_authorization.as_str()).await;
                }
            }
            ChallengeKind::TlsAlpn01 => {
                challenges.publish_tls_alpn01(&name, key_authorization.digest().as_ref())?;
                published.alpn.push(name.clone());
                if let Some(spread) = &published.spread {
                    spread.tls_alpn01(&name, key_authorization.digest().as_ref()).await;
                }
            }
        }
        if published.spread.is_some() {
            // Time for the bus to carry the answer to the other instances.
            tokio::time::sleep(CHALLENGE_SPREAD).await;
        }
        challenge.set_ready().await.map_err(AcmeError::acme("challenge"))?;
    }

    let polling = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .backoff(1.5)
        .timeout(timeout);
    let status = order
        .poll_ready(&polling)
        .await
        .map_err(timeout_or("validation", timeout))?;
    if status != OrderStatus::Ready {
        return Err(match validation_problem(&mut order).await {
            Some(problem) => AcmeError::Problem {
                during: "validation",
                problem,
            },
            None => AcmeError::Protocol {
                during: "validation",
                reason: format!("the order is {status:?}"),
            },
        });
    }
    // Validation is over: the answers can go now.
    drop(published);

    let bad = |e: rcgen::Error| AcmeError::Protocol {
        during: "CSR",
        reason: e.to_string(),
    };
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(bad)?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(bad)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key).map_err(bad)?;
    order
        .finalize_csr(csr.der())
        .await
        .map_err(AcmeError::acme("finalize"))?;
    let chain = order
        .poll_certificate(&polling)
        .await
        .map_err(timeout_or("certificate download", timeout))?;
    Certificate::from_pem(names.to_vec(), chain, key.serialize_pem()).map_err(AcmeError::BadCertificate)
}

fn timeout_or(during: &'static str, after: Duration) -> impl FnOnce(instant_acme::Error) -> AcmeError {
    move |e| match e {
        instant_acme::Error::Timeout(_) => AcmeError::Timeout { during, after },
        other => AcmeError::acme(during)(other),
    }
}

/// The first problem a failed challenge reports (the order itself rarely
/// carries one).
async fn validation_problem(order: &mut Order) -> Option<Problem> {
    if let Some(p) = &order.state().error {
        return Some(Problem::from_acme(p));
    }
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        let name = authz.identifier().to_string();
        let Ok(state) = authz.refresh().await else { continue };
        if let Some(p) = state.challenges.iter().find_map(|c| c.error.as_ref()) {
            let mut problem = Problem::from_acme(p);
            if problem.subproblems.is_empty() {
                problem
                    .subproblems
                    .push(format!("{name}: {}", p.r#type.as_deref().unwrap_or("")));
            }
            return Some(problem);
        }
    }
    None
}

/// The answers one order published; withdrawn when it is dropped, so a
/// failed or cancelled order (a timeout drops it mid-way) leaves nothing.
struct Published {
    challenges: Arc<Challenges>,
    http: Vec<String>,
    alpn: Vec<String>,
    /// The fleet that answers them too, in edge mode.
    spread: Option<Spread>,
}

impl Drop for Published {
    fn drop(&mut self) {
        for token in &self.http {
            self.challenges.remove_http01(token);
        }
        for name in &self.alpn {
            self.challenges.remove_tls_alpn01(name);
        }
        if let Some(spread) = &self.spread {
            spread.withdraw(&self.http, &self.alpn);
        }
    }
}
