// The sign-in page: the form posts to /dashboard/login itself; this only pre-fills the tenant and
// explains why the previous attempt was sent back.
const { document, location, URLSearchParams } = globalThis;

const messages = {
  invalid: 'That tenant and token do not match. Check both and try again.',
  forbidden: 'This token does not give access to that tenant.',
  expired: 'Your session has ended. Please sign in again.',
};

const params = new URLSearchParams(location.search);
const tenant = params.get('tenant') ?? '';
const error = params.get('error');
const tenantInput = document.getElementById('tenant');
const tokenInput = document.getElementById('token');
tenantInput.value = tenant;
if (error) {
  const box = document.getElementById('login-error');
  box.textContent = messages[error] ?? 'Sign-in failed. Please try again.';
  box.dataset.error = error;
  box.hidden = false;
}
(tenant ? tokenInput : tenantInput).focus();
