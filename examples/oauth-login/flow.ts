// The oauth-login example's flow, as the curl lines it prints. A module of its own, without the
// example's MultiauthUser declaration, so that tests can import it.

/**
 * The flow as curl lines with a cookie jar (a file named `jar`). The provider's sign-in page is a
 * browser's step; the local test provider's is a one-field form, so curl can fill it in too.
 */
export function curlFlow (url: string, provider: string): string[] {
  const status = "-o /dev/null -w 'HTTP %{http_code}\\n'"
  const signIn = provider === 'local'
    ? [
        '# 2. Start the login: the app redirects to the provider (state, PKCE and nonce in the URL; -L follows to its sign-in page)',
        `LOGIN_PAGE=$(curl -s -c jar -b jar -L -o /dev/null -w '%{url_effective}' ${url}/auth/local); echo "$LOGIN_PAGE"`,
        '# 3. The provider\'s sign-in form (a browser\'s step with a real provider; any user name here), back to the app\'s callback and the private page',
        `curl -s -c jar -b jar -L -d login=carol "$LOGIN_PAGE" -w '\\nHTTP %{http_code}\\n'`
      ]
    : [
        `# 2. Sign in with a browser at ${url}/ : the ${provider} sign-in page is a browser's step, curl cannot pass it.`,
        `#    Then copy the "sid" cookie for ${new URL(url).hostname} from the browser (developer tools, Application/Storage, Cookies) into the jar:`,
        `printf '${new URL(url).hostname}\\tFALSE\\t/\\tFALSE\\t0\\tsid\\t%s\\n' 'PASTE-THE-SID-COOKIE-VALUE' > jar`,
        '# 3. The private page, with that session',
        `curl -s -c jar -b jar ${url}/private -w '\\nHTTP %{http_code}\\n'`
      ]
  return [
    '# 1. Not signed in: the private page answers 401',
    `curl -s -c jar -b jar ${url}/private ${status}`,
    ...signIn,
    '# 4. Log out: a POST needs an Origin header naming this site (the CSRF check refuses it without one: 403)',
    `curl -s -b jar -X POST ${url}/logout -H 'Origin: ${url}' -o /dev/null -w 'HTTP %{http_code} -> %{redirect_url}\\n'`,
    '# 5. The session is gone on the server, not only from the jar (logout ran without -c, so the jar still has the old cookie): 401',
    `curl -s -b jar ${url}/private ${status}`
  ]
}
