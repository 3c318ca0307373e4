//! The users `gatehouse dev` offers on its login page (`dev_users`, `--user`), and the
//! spelling rules for their names and roles, which the dev login page applies to typed ones.

/// A user offered on the dev login page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevUser {
    pub name: String,
    pub roles: Vec<String>,
}

impl DevUser {
    /// `alice=admin,dev` or `bob`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, roles) = text.split_once('=').unwrap_or((text, ""));
        let name = name.trim();
        if !valid(name) {
            return Err(format!(
                "`{name}` is not a user name (letters, digits, `.`, `_`, `-`, `@`)"
            ));
        }
        let roles = split_roles(roles)?;
        Ok(Self {
            name: name.to_owned(),
            roles,
        })
    }
}

pub(crate) fn valid(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@:".contains(&b))
}

pub(crate) fn split_roles(text: &str) -> Result<Vec<String>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| {
            if valid(r) {
                Ok(r.to_owned())
            } else {
                Err(format!(
                    "`{r}` is not a role name: separate roles with commas, and use letters, digits, `.`, `_`, `-`, `@` and `:`"
                ))
            }
        })
        .collect()
}
