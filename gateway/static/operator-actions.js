// The operator dashboard's rollout actions: each confirmed in a dialog first, then sent to
// the admin API's rollout routes; a refusal shows the gateway's error envelope.
import { clearError, readJson, reportHttpError, showError } from './operator-dom.js';
import { shownRoute } from './operator-view.js';

const dialog = document.getElementById('confirm');
const title = document.getElementById('confirm-title');
const message = document.getElementById('confirm-message');
const weightField = document.getElementById('confirm-weight-field');
const weightInput = document.getElementById('confirm-weight');
const reasonInput = document.getElementById('confirm-reason');
const actionStatus = document.getElementById('action-status');

const ACTIONS = {
  pause: { title: 'Pause', says: (m) => `Pause the automatic steps of ${m}'s canaries?` },
  resume: { title: 'Resume', says: (m) => `Resume the automatic steps of ${m}'s canaries?` },
  weight: { title: 'Set weight', says: (m, v) => `Set the share of callers ${m} ${v} takes.` },
  promote: {
    title: 'Promote',
    says: (m, v) => `Make ${v} the stable version of ${m}? The old stable version is deprecated.`,
  },
  rollback: {
    title: 'Roll back',
    says: (m, v) => `Send every caller of ${m} ${v} back to the stable version?`,
  },
};

// The dialog's answer: null when cancelled, else the reason and (for weight) the weight.
function confirmAction(action, model, version, currentWeight) {
  const spec = ACTIONS[action];
  title.textContent = `${spec.title}: ${model}${version ? ` ${version}` : ''}`;
  message.textContent = spec.says(model, version);
  weightField.hidden = action !== 'weight';
  weightInput.value = typeof currentWeight === 'number' ? String(currentWeight) : '';
  reasonInput.value = '';
  return new Promise((resolve) => {
    const closed = () => {
      dialog.removeEventListener('close', closed);
      if (dialog.returnValue !== 'ok') {
        resolve(null);
        return;
      }
      resolve({ reason: reasonInput.value.trim(), weight: Number.parseFloat(weightInput.value) });
    };
    dialog.addEventListener('close', closed);
    dialog.returnValue = 'cancel'; // what Escape leaves
    dialog.showModal();
    (action === 'weight' ? weightInput : reasonInput).focus();
  });
}

// Confirm, then send, one action; ``headers`` gives the request's Authorization.
export async function act(model, action, version, button, headers) {
  const route = version ? shownRoute(model, version) : null;
  const answer = await confirmAction(action, model, version, route ? route.weight : null);
  if (answer === null) return;
  const body = { reason: answer.reason };
  if (version) body.version = version;
  if (action === 'weight') {
    if (!Number.isFinite(answer.weight)) {
      showError('enter a weight from 0 to 100.');
      return;
    }
    body.weight = answer.weight;
  }
  const doing = `${ACTIONS[action].title}: ${model}${version ? ` ${version}` : ''}`;
  button.disabled = true;
  actionStatus.textContent = `${doing}…`;
  try {
    const response = await fetch(`/v1/admin/rollouts/${encodeURIComponent(model)}/${action}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...headers() },
      body: JSON.stringify(body),
    });
    const reply = await readJson(response);
    if (!response.ok) {
      reportHttpError(response, reply);
      actionStatus.textContent = `${doing}: refused`;
      return;
    }
    // The change itself shows when the stream pushes it (at once, on this replica).
    clearError();
    actionStatus.textContent = `${doing}: done`;
  } catch (error) {
    showError(`could not reach the gateway (${error.message}).`);
    actionStatus.textContent = `${doing}: failed`;
  } finally {
    button.disabled = false;
  }
}
