//! `declared`: a device connects the way its description says (the generic
//! device suite adds this check from the description). Every CONNECT of the
//! device must carry the declared keep alive (`declared-keepalive`) and
//! the declared will — its topic, and its payload when one is declared
//! (`declared-will`). `{client_id}` in the will topic is the client id of
//! that CONNECT. Nothing declared, nothing judged.

use super::index::Index;
use super::{Checker, Verdict};

pub struct DeclaredChecker {
    pub actor: String,
    pub keepalive: Option<u16>,
    pub will_topic: Option<String>,
    pub will_payload: Option<String>,
}

impl Checker for DeclaredChecker {
    fn name(&self) -> &str {
        "declared"
    }

    fn check(&self, history: &super::History) -> Verdict {
        let ix = Index::new(history);
        let mut v = Verdict::new(self.name());
        let mut connects = 0;
        let (mut bad_ka, mut bad_will) = (false, false);
        for (_, c) in ix.conns_of(&self.actor) {
            let Some((s, connect)) = &c.connect else {
                continue;
            };
            connects += 1;
            if let Some(k) = self.keepalive {
                if connect.keep_alive != k && !bad_ka {
                    bad_ka = true;
                    v.fail(
                        "declared-keepalive",
                        format!(
                            "{}'s CONNECT asks for a keep alive of {} s; its description declares {k} s",
                            self.actor, connect.keep_alive
                        ),
                        vec![s.seq],
                    );
                }
            }
            if let Some(t) = &self.will_topic {
                let want = t.replace("{client_id}", &connect.client_id);
                let why = match &connect.will {
                    None => Some("carries no will".to_string()),
                    Some(w) if w.topic != want => Some(format!("sets its will on `{}`", w.topic)),
                    Some(w)
                        if self
                            .will_payload
                            .as_ref()
                            .is_some_and(|p| p.as_bytes() != w.payload.as_ref()) =>
                    {
                        Some(format!(
                            "sets the will payload {:?}",
                            String::from_utf8_lossy(&w.payload)
                        ))
                    }
                    _ => None,
                };
                if let (Some(why), false) = (why, bad_will) {
                    bad_will = true;
                    v.fail(
                        "declared-will",
                        format!(
                            "{}'s CONNECT {why}; its description declares a will on `{want}`{}",
                            self.actor,
                            self.will_payload
                                .as_ref()
                                .map(|p| format!(" with payload {p:?}"))
                                .unwrap_or_default()
                        ),
                        vec![s.seq],
                    );
                }
            }
        }
        v.note(format!(
            "{connects} CONNECT(s) of {} compared with its description",
            self.actor
        ));
        v
    }
}
