//! The OpenID provider, as the login flow uses it: discovery, the authorization URL (with
//! `state`, `nonce` and PKCE S256), the code exchange, refresh, and RP-initiated logout.
//!
//! Built on the `oauth2` crate with our reqwest client, which follows no redirects. Discovery
//! tells us endpoints only: the signing algorithms we accept come from our allow-list, and the
//! keys come from the same `Jwks` machinery bearer tokens use.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, StandardRevocableToken, StandardTokenResponse, TokenResponse,
    TokenUrl,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::config::{LoginSettings, idp_url_allowed};
use crate::secret::Secret;

/// The provider endpoints we use, from discovery.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    /// RFC 9207: the provider adds `iss` to every authorization answer.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

/// The `id_token` of a token response.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl ExtraTokenFields for IdTokenField {}

type TokenResponseWithId = StandardTokenResponse<IdTokenField, BasicTokenType>;

type OidcClient = oauth2::Client<
    BasicErrorResponse,
    TokenResponseWithId,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Tokens from the token endpoint.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub id_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_in: Option<Duration>,
}

/// Why talking to the provider failed. The text is for logs; users see a generic page.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    #[error("the provider's configuration has not been loaded yet")]
    NotReady,
    #[error("the provider refused: {0}")]
    Refused(String),
    #[error("the provider could not be reached: {0}")]
    Unreachable(String),
    #[error("the provider's answer was not understood: {0}")]
    Invalid(String),
}

/// The login flow's own secrets: `state` and `nonce` values, and the PKCE verifier.
pub struct FlowSecrets {
    pub nonce: String,
    pub verifier: String,
    pub challenge: PkceCodeChallenge,
}

impl Default for FlowSecrets {
    fn default() -> Self {
        Self::new()
    }
}

impl FlowSecrets {
    pub fn new() -> Self {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        Self {
            nonce: CsrfToken::new_random().secret().clone(),
            verifier: verifier.secret().clone(),
            challenge,
        }
    }
}

pub struct Provider {
    settings: LoginSettings,
    client_secret: ArcSwapOption<Secret<String>>,
    http: reqwest::Client,
    metadata: ArcSwapOption<Metadata>,
    loaded: watch::Sender<bool>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("issuer", &self.settings.issuer)
            .finish_non_exhaustive()
    }
}

impl Provider {
    pub fn new(
        settings: LoginSettings,
        client_secret: Option<Secret<String>>,
        http: reqwest::Client,
    ) -> Arc<Self> {
        Arc::new(Self {
            settings,
            client_secret: ArcSwapOption::from(client_secret.map(Arc::new)),
            http,
            metadata: ArcSwapOption::empty(),
            loaded: watch::channel(false).0,
        })
    }

    /// The client secret from now on (its file changed).
    pub fn set_client_secret(&self, secret: Secret<String>) {
        self.client_secret.store(Some(Arc::new(secret)));
    }

    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    pub fn settings(&self) -> &LoginSettings {
        &self.settings
    }

    /// Becomes true once discovery has succeeded (for `/readyz`).
    pub fn loaded(&self) -> watch::Receiver<bool> {
        self.loaded.subscribe()
    }

    pub fn metadata(&self) -> Option<Arc<Metadata>> {
        self.metadata.load_full()
    }

    /// Discovers the provider, retrying with backoff until it works, then again every hour.
    pub async fn run(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(250);
        loop {
            match self.discover().await {
                Ok(metadata) => {
                    self.metadata.store(Some(Arc::new(metadata)));
                    self.loaded.send_replace(true);
                    backoff = Duration::from_millis(250);
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                Err(error) => {
                    tracing::warn!(issuer = %self.settings.issuer, %error, "OpenID discovery failed; browser login waits for it");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    async fn discover(&self) -> Result<Metadata, ProviderError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.settings.issuer.trim_end_matches('/')
        );
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| ProviderError::Unreachable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(ProviderError::Unreachable(format!(
                "{url}: HTTP {}",
                response.status()
            )));
        }
        let metadata: Metadata = response.json_limited().await?;
        if metadata.issuer != self.settings.issuer {
            return Err(ProviderError::Invalid(format!(
                "discovery names issuer `{}`",
                metadata.issuer
            )));
        }
        for endpoint in [
            Some(&metadata.authorization_endpoint),
            Some(&metadata.token_endpoint),
            metadata.end_session_endpoint.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            idp_url_allowed(endpoint)
                .map_err(|p| ProviderError::Invalid(format!("endpoint {endpoint} {p}")))?;
        }
        Ok(metadata)
    }

    fn client(&self) -> Result<OidcClient, ProviderError> {
        let metadata = self.metadata().ok_or(ProviderError::NotReady)?;
        let invalid = |e: oauth2::url::ParseError| ProviderError::Invalid(e.to_string());
        let mut client = oauth2::Client::new(ClientId::new(self.settings.client_id.clone()))
            .set_auth_uri(AuthUrl::new(metadata.authorization_endpoint.clone()).map_err(invalid)?)
            .set_token_uri(TokenUrl::new(metadata.token_endpoint.clone()).map_err(invalid)?)
            .set_redirect_uri(
                RedirectUrl::new(self.settings.redirect_url.clone()).map_err(invalid)?,
            );
        if let Some(secret) = self.client_secret.load().as_deref() {
            client = client.set_client_secret(ClientSecret::new(secret.expose().clone()));
        }
        Ok(client)
    }

    /// The URL that sends the browser to the provider's login.
    pub fn authorize_url(&self, state: &str, flow: &FlowSecrets) -> Result<String, ProviderError> {
        let state = state.to_owned();
        let client = self.client()?;
        let mut request = client
            .authorize_url(move || CsrfToken::new(state))
            .set_pkce_challenge(flow.challenge.clone())
            .add_extra_param("nonce", flow.nonce.clone());
        for scope in &self.settings.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        for (name, value) in &self.settings.params {
            request = request.add_extra_param(name.clone(), value.clone());
        }
        Ok(request.url().0.to_string())
    }

    /// Exchanges an authorization code (with the flow's PKCE verifier) for tokens.
    pub async fn exchange(&self, code: &str, verifier: &str) -> Result<Tokens, ProviderError> {
        let client = self.client()?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
            .request_async(&self.http_client())
            .await
            .map_err(token_error)?;
        Ok(tokens(&response))
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, ProviderError> {
        let client = self.client()?;
        let token = RefreshToken::new(refresh_token.to_owned());
        let response = client
            .exchange_refresh_token(&token)
            .request_async(&self.http_client())
            .await
            .map_err(token_error)?;
        Ok(tokens(&response))
    }

    /// RP-initiated logout at the provider, when it offers it.
    pub fn end_session_url(&self, id_token_hint: Option<&str>) -> Option<String> {
        let endpoint = self.metadata()?.end_session_endpoint.clone()?;
        let mut url = oauth2::url::Url::parse(&endpoint).ok()?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("client_id", &self.settings.client_id);
            if let Some(hint) = id_token_hint {
                query.append_pair("id_token_hint", hint);
            }
            if let Some(after) = &self.settings.post_logout_redirect_url {
                query.append_pair("post_logout_redirect_uri", after);
            }
        }
        Some(url.to_string())
    }

    /// The HTTP client handed to `oauth2`: ours, which follows no redirects. Each request's
    /// future owns a handle to the client, so it borrows nothing (and stays `Send`).
    fn http_client(
        &self,
    ) -> impl Fn(
        oauth2::HttpRequest,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<oauth2::HttpResponse, HttpError>> + Send>,
    > {
        let http = self.http.clone();
        move |request| Box::pin(send(http.clone(), request))
    }
}

async fn send(
    http: reqwest::Client,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, HttpError> {
    let (parts, body) = request.into_parts();
    let response = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| HttpError(e.to_string()))?;
    let status = response.status();
    // A token endpoint answering 5xx is down, not refusing (OAuth errors are 400 or 401): the
    // sign-in gets 503 like an unreachable provider, and a refresh is tried again later.
    if status.is_server_error() {
        return Err(HttpError(format!(
            "the token endpoint answered HTTP {status}"
        )));
    }
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(|e| HttpError(e.to_string()))?;
    if body.len() > 1 << 20 {
        return Err(HttpError("token response larger than 1 MiB".into()));
    }
    let mut out = http::Response::new(body.to_vec());
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(out)
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

fn tokens(response: &TokenResponseWithId) -> Tokens {
    Tokens {
        access_token: response.access_token().secret().clone(),
        id_token: response.extra_fields().id_token.clone(),
        refresh_token: response.refresh_token().map(|t| t.secret().clone()),
        expires_in: response.expires_in(),
    }
}

fn token_error(error: RequestTokenError<HttpError, BasicErrorResponse>) -> ProviderError {
    match error {
        RequestTokenError::ServerResponse(response) => {
            ProviderError::Refused(response.error().to_string())
        }
        RequestTokenError::Request(e) => ProviderError::Unreachable(e.to_string()),
        RequestTokenError::Parse(e, _) => ProviderError::Invalid(e.to_string()),
        RequestTokenError::Other(e) => ProviderError::Invalid(e),
    }
}

/// Reads a JSON body of at most 1 MiB.
trait JsonLimited {
    async fn json_limited<T: serde::de::DeserializeOwned>(self) -> Result<T, ProviderError>;
}

impl JsonLimited for reqwest::Response {
    async fn json_limited<T: serde::de::DeserializeOwned>(mut self) -> Result<T, ProviderError> {
        let mut body = Vec::new();
        while let Some(chunk) = self
            .chunk()
            .await
            .map_err(|e| ProviderError::Unreachable(e.to_string()))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > 1 << 20 {
                return Err(ProviderError::Invalid("document larger than 1 MiB".into()));
            }
        }
        serde_json::from_slice(&body).map_err(|e| ProviderError::Invalid(e.to_string()))
    }
}
