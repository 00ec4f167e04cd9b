// A real OpenID provider for the tests: node-oidc-provider (npm `oidc-provider`), configured
// from a JSON file: the signing key, one client, static accounts with group claims, and a
// resource server whose access tokens are JWTs. Prints "listening on <issuer>" once ready.
//
//   node oidc_provider.mjs CONFIG.json
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';

const require = createRequire(process.env.OIDC_PROVIDER_MODULES + '/');
const { default: Provider } = await import(require.resolve('oidc-provider'));

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;
const accounts = cfg.accounts;

const provider = new Provider(issuer, {
  clients: [cfg.client],
  jwks: { keys: [cfg.signing_key] },
  pkce: { required: () => true },
  claims: { openid: ['sub'], profile: ['name', 'groups'], email: ['email'] },
  conformIdTokenClaims: false,
  ttl: { AccessToken: cfg.ttl, IdToken: cfg.ttl, Session: 3600, Grant: 3600, Interaction: 600 },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => cfg.audience,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => ({
        scope: 'openid profile email',
        audience: resource,
        accessTokenTTL: cfg.ttl,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  extraTokenClaims: async (ctx, token) =>
    token.accountId && accounts[token.accountId]
      ? { groups: accounts[token.accountId].groups, email: accounts[token.accountId].email }
      : undefined,
  findAccount: async (ctx, id) => {
    const account = accounts[id];
    if (!account) return undefined;
    return {
      accountId: id,
      claims: async () => ({ sub: id, name: id, email: account.email, groups: account.groups }),
    };
  },
  // The dev interactions ask for consent once per client; grant everything asked.
  loadExistingGrant: async (ctx) => {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid profile email');
    grant.addOIDCClaims(['groups', 'email', 'name']);
    const asked = ctx.oidc.params.resource;
    for (const resource of [cfg.audience, ...(Array.isArray(asked) ? asked : asked ? [asked] : [])]) {
      grant.addResourceScope(resource, 'openid profile email');
    }
    await grant.save();
    return grant;
  },
});
provider.proxy = false;
server.on('request', provider.callback());
process.stdout.write(`listening on ${issuer}\n`);
process.on('SIGTERM', () => server.close(() => process.exit(0)));
