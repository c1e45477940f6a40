// What a web page does with the official SDK. Bundled by drive.mjs (esbuild) into
// /scenarios.js, served from one origin, calling the proxy on another. Each scenario returns
// plain data for the test to judge: what JavaScript in the page could read, nothing more.
import Anthropic from '@anthropic-ai/sdk';

// `auth` names the constructor argument; SDK 1.x sends either as `Authorization: Bearer`.
function client({ baseURL, token, auth }) {
  const credentials = auth === 'authToken' ? { authToken: token, apiKey: null } : { apiKey: token };
  // maxRetries 0: a 429 must reach the page, not be retried away.
  return new Anthropic({ baseURL, dangerouslyAllowBrowser: true, maxRetries: 0, ...credentials });
}

const textOf = (message) =>
  message.content
    .filter((block) => block.type === 'text')
    .map((block) => block.text)
    .join('');

async function create(config) {
  const { data, response } = await client(config)
    .messages.create({
      model: config.model,
      max_tokens: 64,
      messages: [{ role: 'user', content: config.prompt }],
    })
    .withResponse();
  return {
    status: response.status,
    text: textOf(data),
    requestIdHeader: response.headers.get('request-id'),
    sdkRequestId: data._request_id,
  };
}

async function stream(config) {
  const deltas = [];
  const messageStream = client(config).messages.stream({
    model: config.model,
    max_tokens: 64,
    messages: [{ role: 'user', content: config.prompt }],
  });
  messageStream.on('text', (delta) => deltas.push(delta));
  const { response } = await messageStream.withResponse();
  const final = await messageStream.finalMessage();
  return {
    status: response.status,
    contentType: response.headers.get('content-type'),
    deltas,
    text: textOf(final),
    requestIdHeader: response.headers.get('request-id'),
    sdkRequestId: messageStream.request_id,
  };
}

async function throttled(config) {
  try {
    await client(config).messages.create({
      model: config.model,
      max_tokens: 64,
      messages: [{ role: 'user', content: config.prompt }],
    });
  } catch (error) {
    return {
      errorClass: error?.constructor?.name ?? null,
      isRateLimitError: error instanceof Anthropic.RateLimitError,
      status: error.status,
      errorType: error.error?.error?.type ?? null,
      retryAfter: error.headers?.get('retry-after') ?? null,
      requestIdHeader: error.headers?.get('request-id') ?? null,
      sdkRequestId: error.requestID ?? null,
    };
  }
  return { isRateLimitError: false, status: 200 };
}

window.scenarios = { create, stream, throttled };
window.scenariosReady = true;
