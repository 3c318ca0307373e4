// An OpenID provider that issues opaque access tokens, for tests/introspection.rs: panva's
// oidc-provider with the client credentials grant, introspection and revocation on, listening
// on 127.0.0.1 at a port the OS picks. Tokens are for the resource `urn:orders-api` (audience
// `orders-api`, opaque format) and carry `roles: ["reporter"]`.
//
// Clients: `orders-client` (client credentials, secret in $ORDERS_CLIENT_SECRET) asks for
// tokens and revokes them; `gatehouse` (secret in $GATEHOUSE_CLIENT_SECRET) introspects.
// Prints one JSON line `{"issuer": ...}` on stdout once it listens. `GET /__test/introspections`
// answers how many introspection requests it has received.

import http from 'node:http';
import Provider from 'oidc-provider';

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'orders-client',
      client_secret: process.env.ORDERS_CLIENT_SECRET,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: 'orders:read orders:write',
    },
    {
      client_id: 'gatehouse',
      client_secret: process.env.GATEHOUSE_CLIENT_SECRET,
      grant_types: [],
      response_types: [],
      redirect_uris: [],
    },
  ],
  scopes: ['openid', 'orders:read', 'orders:write'],
  cookies: { keys: ['opaque-idp-test-only-cookie-key'] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'urn:orders-api',
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'orders:read orders:write',
        audience: 'orders-api',
        accessTokenFormat: 'opaque',
        accessTokenTTL: 3600,
      }),
    },
  },
  extraTokenClaims: () => ({ roles: ['reporter'] }),
});

let introspections = 0;
const callback = provider.callback();
server.on('request', (req, res) => {
  if (req.url === '/__test/introspections') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ count: introspections }));
    return;
  }
  if (req.url.startsWith('/token/introspection')) introspections += 1;
  callback(req, res);
});

console.log(JSON.stringify({ issuer }));
