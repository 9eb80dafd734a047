// The operator dashboard's small helpers: elements, numbers as shown, errors as shown.

const errorBox = document.getElementById('error');

export function make(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

export function percent(share, digits = 1) {
  return `${(share * 100).toFixed(digits)}%`;
}

export function ms(value) {
  return typeof value === 'number' ? `${value.toFixed(value < 10 ? 1 : 0)} ms` : '–';
}

export function number(value, digits = 3) {
  return typeof value === 'number' ? String(Number(value.toPrecision(digits))) : '–';
}

export function clock(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString();
}

export function showError(message, requestId) {
  errorBox.replaceChildren(make('strong', null, 'Error: '), document.createTextNode(message));
  if (requestId) errorBox.append(make('span', 'request-id', ` (request ${requestId})`));
  errorBox.hidden = false;
}

export function clearError() {
  errorBox.hidden = true;
  errorBox.replaceChildren();
}

export async function readJson(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

// The gateway's error envelope {"error": {"code", "message", "request_id"}} as a sentence.
export function reportHttpError(response, body) {
  const error = body && typeof body === 'object' ? body.error : null;
  if (error && typeof error.message === 'string') {
    const code = error.code ? `${error.code}, ` : '';
    showError(`${error.message} (${code}HTTP ${response.status})`, error.request_id);
  } else {
    showError(`the gateway answered HTTP ${response.status}.`);
  }
}
