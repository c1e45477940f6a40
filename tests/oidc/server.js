// A real OpenID provider (panva/oidc-provider, OpenID certified) on loopback, for the SSO
// end-to-end tests (tests/e2e/test_sso.py). Not for any other use: its login is test-only.
//
//   PORT=8123 node tests/oidc/server.js    → prints "LISTENING http://127.0.0.1:8123"
//
// One public client, `claude-code`, may use the device-authorization grant and refresh
// tokens. Access tokens are JWTs (RS256) for the resource `bedrock-proxy` (Resource Indicators,
// RFC 8707) and carry the person's `email` and `groups`. The login is test-only: the
// interaction page asks for an account name and signs that account in, and consent is given
// at once; the device code's own confirmation step is oidc-provider's.

import * as crypto from 'node:crypto';
import * as querystring from 'node:querystring';

import Provider, { errors } from 'oidc-provider';

const port = Number(process.env.PORT || 0);
if (!port) {
  console.error('set PORT to the port to listen on (the issuer URL includes it)');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;
// Resource indicators must be absolute URIs (RFC 8707); the audience the proxy checks is plain.
const RESOURCE = 'urn:bedrock-proxy';
const AUDIENCE = 'bedrock-proxy';

// The people this provider knows.
const ACCOUNTS = {
  alice: { email: 'alice@example.com', groups: ['engineering'] },
  bob: { email: 'bob@example.com', groups: ['contractors'] },
};

const signingKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const jwk = { ...signingKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: 'test-rs256' };

function person(accountId) {
  const account = ACCOUNTS[accountId];
  if (!account) return undefined;
  return {
    accountId,
    async claims() {
      return { sub: accountId, email: account.email, email_verified: true, groups: account.groups };
    },
  };
}

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'claude-code',
      client_name: 'Claude Code',
      token_endpoint_auth_method: 'none',
      application_type: 'native',
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
      response_types: [],
      redirect_uris: [],
    },
  ],
  jwks: { keys: [jwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  findAccount: async (_ctx, sub) => person(sub),
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'email', 'groups', 'api'],
  // The proxy names callers by email and gives them their groups' policies: both ride in the
  // access token, which is all the proxy sees.
  extraTokenClaims: async (_ctx, token) => {
    const account = token.accountId && ACCOUNTS[token.accountId];
    return account ? { email: account.email, groups: account.groups } : undefined;
  },
  ttl: {
    AccessToken: 300,
    DeviceCode: 600,
    Grant: 86400,
    IdToken: 300,
    Interaction: 600,
    RefreshToken: 86400,
    Session: 86400,
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    deviceFlow: {
      enabled: true,
      successSource: async (ctx) => {
        ctx.body = '<!DOCTYPE html><title>Signed in</title><p id="device-success">Signed in. You may close this page.</p>';
      },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => RESOURCE,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resourceIndicator) => {
        if (resourceIndicator !== RESOURCE) throw new errors.InvalidTarget();
        return {
          scope: 'api',
          audience: AUDIENCE,
          accessTokenTTL: 300,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
});

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return querystring.parse(Buffer.concat(chunks).toString('utf8'));
}

const html = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// The test-only interaction: a login form that takes an account name, and consent granted for
// whatever the client asked.
provider.use(async (ctx, next) => {
  const match = /^\/interaction\/([\w-]+)$/.exec(ctx.path);
  if (!match) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const { prompt, params, session } = details;

  if (prompt.name === 'login') {
    if (ctx.method === 'GET') {
      ctx.type = 'html';
      ctx.body = `<!DOCTYPE html><title>Sign in</title>
<form id="login" method="post" action="/interaction/${html(match[1])}">
<input name="login" placeholder="account (test only)"><button type="submit">Sign in</button></form>`;
      return undefined;
    }
    const form = await readForm(ctx.req);
    if (!person(form.login)) {
      ctx.status = 400;
      ctx.body = 'unknown account';
      return undefined;
    }
    const to = await provider.interactionResult(ctx.req, ctx.res, { login: { accountId: form.login } }, {
      mergeWithLastSubmission: false,
    });
    ctx.status = 303;
    ctx.redirect(to);
    return undefined;
  }

  if (prompt.name === 'consent') {
    const grant = prompt.details.grantId
      ? await provider.Grant.find(prompt.details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes || {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    const to = await provider.interactionResult(ctx.req, ctx.res, { consent: { grantId } }, {
      mergeWithLastSubmission: true,
    });
    ctx.status = 303;
    ctx.redirect(to);
    return undefined;
  }

  ctx.status = 400;
  ctx.body = `unexpected prompt ${prompt.name}`;
  return undefined;
});

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`LISTENING ${issuer}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
