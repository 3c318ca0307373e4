//! `policies/oauth2-proxy.yaml`: who oauth2-proxy let in, as route rules. In order: the
//! routes that skip auth (`skip_auth_routes`, `skip_auth_regex`, `skip_auth_preflight`), the
//! API routes (`api_routes`: 401 instead of a login redirect), then everything else for a
//! signed-in caller. Every authenticated rule carries the same requirements: the email
//! domains (`email_domains`, with `email_verified` as oauth2-proxy checks it) and the groups
//! or roles (`allowed_groups`, `allowed_roles`); with `skip_auth_preflight` also
//! `cors: { preflight: pass }`, because a preflight is judged by the route of the request it
//! announces, not by an `OPTIONS` rule.

use std::fmt::Write as _;

use super::map::{Mapper, list, q};
use super::report::Outcome;
use super::routes::{self, Translated};

impl Mapper {
    pub fn policy(&mut self) -> String {
        let mut out = String::from(
            "# Written by `gatehouse migrate oauth2-proxy` (see MIGRATION.md).\nversion: 1\ndefault: deny\nroutes:\n",
        );
        // The keys every authenticated rule gets: the requirements, and the CORS mode.
        let mut require = self.requirements();
        let mut n = 0;
        for option in ["skip_auth_routes", "skip_auth_regex"] {
            let Some(s) = self.take(option) else { continue };
            let mut all_ok = true;
            for entry in s.list() {
                let translated = match option {
                    "skip_auth_routes" => routes::with_method(&entry),
                    _ => routes::regex_paths(&entry),
                };
                match translated {
                    Ok(t) => {
                        n += 1;
                        self.note_route(option, &s.at, &t);
                        route(&mut out, &format!("public-{n}"), &t, "none", None, "");
                    }
                    Err(reason) => {
                        all_ok = false;
                        self.refused(option, &s.at, reason);
                    }
                }
            }
            if all_ok {
                self.mapped(option, &s, "routes with `auth: none`, first in the policy");
            }
        }
        if let Some(s) = self.take("skip_auth_preflight") {
            if s.is_true() {
                self.mapped(
                    "skip_auth_preflight",
                    &s,
                    "`cors: { preflight: pass }` on every authenticated route (CORS preflights \
                     reach the app without auth), and a route letting every other OPTIONS \
                     request through without auth, as oauth2-proxy does (review it)",
                );
                require.push_str("    cors: { preflight: pass }\n");
                out.push_str(
                    "  - name: preflight\n    path: /**\n    methods: [OPTIONS]\n    auth: none\n",
                );
            } else {
                self.mapped(
                    "skip_auth_preflight",
                    &s,
                    "off: OPTIONS needs auth like any method",
                );
            }
        }
        if let Some(s) = self.take("api_routes") {
            let mut all_ok = true;
            for (i, entry) in s.list().iter().enumerate() {
                match routes::with_method(entry) {
                    Ok(t) => {
                        self.note_route("api_routes", &s.at, &t);
                        let name = format!("api-{}", i + 1);
                        route(&mut out, &name, &t, "any", Some("deny"), &require);
                    }
                    Err(reason) => {
                        all_ok = false;
                        self.refused("api_routes", &s.at, reason);
                    }
                }
            }
            if all_ok {
                self.mapped(
                    "api_routes",
                    &s,
                    "routes answering 401 (never a login redirect)",
                );
            }
        }
        let everything = Translated {
            method: None,
            paths: vec!["/**".to_owned()],
            note: None,
        };
        route(&mut out, "signed-in", &everything, "any", None, &require);
        out
    }

    fn note_route(&mut self, option: &str, at: &str, t: &Translated) {
        if let Some(note) = &t.note {
            self.report.add(Outcome::Mapped, option, at, note.clone());
        }
    }

    /// The `require:` block every authenticated rule gets (indented for a route).
    fn requirements(&mut self) -> String {
        let mut out = String::new();
        let mut roles = Vec::new();
        if let Some(s) = self.take("allowed_groups") {
            roles.extend(s.list());
            self.mapped(
                "allowed_groups",
                &s,
                "require.roles.any_of (the groups claim)",
            );
        }
        if let Some(s) = self.take("allowed_roles") {
            for role in s.list() {
                if role.contains(':') {
                    self.refused(
                        "allowed_roles",
                        &s.at,
                        format!("`{role}`: Keycloak client roles (`client:role`) are not mapped; list realm roles, or write the rule by hand"),
                    );
                } else {
                    roles.push(role);
                }
            }
            self.mapped(
                "allowed_roles",
                &s,
                "require.roles.any_of (Keycloak realm roles, realm_access.roles)",
            );
        }
        if let Some(s) = self.take("authenticated_emails_file") {
            self.refused(
                "authenticated_emails_file",
                &s.at,
                "a list of single emails allowed besides the domains cannot be one rule; write \
                 `require.claims.email.one_of` by hand",
            );
        }
        let unverified = self
            .take("insecure_oidc_allow_unverified_email")
            .inspect(|s| {
                self.mapped(
                    "insecure_oidc_allow_unverified_email",
                    s,
                    "no `email_verified` requirement when true",
                )
            })
            .is_some_and(|s| s.is_true());
        let domains = self.take("email_domains");
        let mut lines = Vec::new();
        match &domains {
            None => self.refused(
                "email_domains",
                "",
                "is required (oauth2-proxy refuses to start without it); `*` lets every signed-in user in",
            ),
            Some(s) if s.list().iter().any(|d| d == "*") => {
                self.mapped("email_domains", s, "`*`: any signed-in user (no email requirement)");
            }
            Some(s) => {
                self.mapped("email_domains", s, "require.email_domains");
                lines.push(format!("      email_domains: {}", list(&s.list())));
                if !unverified {
                    self.report.add(
                        Outcome::Mapped,
                        "email_domains",
                        &s.at,
                        "with `email_verified: true` required, as oauth2-proxy refuses unverified \
                         emails (a provider that never sends the claim is refused: set \
                         insecure_oidc_allow_unverified_email if it should not be)",
                    );
                    lines.push("      claims:\n        email_verified: { equals: true }".to_owned());
                }
            }
        }
        if !roles.is_empty() {
            lines.push(format!("      roles: {{ any_of: {} }}", list(&roles)));
        }
        if !lines.is_empty() {
            let _ = writeln!(out, "    require:\n{}", lines.join("\n"));
        }
        out
    }
}

fn route(
    out: &mut String,
    name: &str,
    t: &Translated,
    auth: &str,
    on_unauthenticated: Option<&str>,
    require: &str,
) {
    let _ = writeln!(out, "  - name: {name}");
    match t.paths.as_slice() {
        [one] => {
            let _ = writeln!(out, "    path: {}", q(one));
        }
        many => {
            let _ = writeln!(out, "    paths: {}", list(many));
        }
    }
    if let Some(method) = &t.method {
        let _ = writeln!(out, "    methods: [{method}]");
    }
    let _ = writeln!(out, "    auth: {auth}");
    if let Some(on) = on_unauthenticated {
        let _ = writeln!(out, "    on_unauthenticated: {on}");
    }
    if auth != "none" {
        out.push_str(require);
    }
}
