// Drives a running gpt2d with the official OpenAI Node.js client, as any
// program written for OpenAI would: cmd/gpt2d/openai_test.go runs it with
// GPT2D_URL (the server's base URL) and GPT2D_API_KEY (a gpt2d API key).
// It exits non-zero on the first failed check and prints a JSON summary.
import OpenAI from 'openai';

const baseURL = process.env.GPT2D_URL + '/v1';
const client = new OpenAI({ baseURL, apiKey: process.env.GPT2D_API_KEY, maxRetries: 0, timeout: 60_000 });

function check(ok, what, got) {
  if (!ok) {
    console.error(`FAIL: ${what}: ${JSON.stringify(got)}`);
    process.exit(1);
  }
}

// models.list
const ids = [];
for await (const m of client.models.list()) ids.push(m.id);
check(ids.length === 1, 'one model listed', ids);
const model = ids[0];

// A completion.
const params = { model, prompt: 'The meaning of life is', max_tokens: 24, seed: 7, temperature: 0.9, logprobs: 2 };
const c = await client.completions.create(params);
check(c.object === 'text_completion' && c.model === model && c.id.startsWith('cmpl-'), 'completion object', c);
check(c.choices.length === 1 && typeof c.choices[0].text === 'string' && c.choices[0].text.length > 0, 'completion text', c.choices);
check(['stop', 'length'].includes(c.choices[0].finish_reason), 'finish_reason', c.choices[0]);
check(c.usage.prompt_tokens > 0 && c.usage.total_tokens === c.usage.prompt_tokens + c.usage.completion_tokens, 'usage', c.usage);
check(c.choices[0].logprobs.tokens.length === c.usage.completion_tokens, 'one logprob per token', c.choices[0].logprobs);

// The same completion, streamed: the same text, chunk by chunk.
const stream = await client.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
let streamed = '';
let finish = null;
let usage = null;
let chunks = 0;
for await (const chunk of stream) {
  chunks++;
  for (const ch of chunk.choices) {
    streamed += ch.text;
    if (ch.finish_reason) finish = ch.finish_reason;
  }
  if (chunk.usage) usage = chunk.usage;
}
check(chunks > 2, 'several chunks', chunks);
check(streamed === c.choices[0].text, 'streamed text equals the completion', { streamed, text: c.choices[0].text });
check(finish === c.choices[0].finish_reason, 'streamed finish_reason', finish);
check(usage && usage.completion_tokens === c.usage.completion_tokens, 'streamed usage', usage);

// A chat completion: GPT-2 is a base model, so the server renders the
// messages through its plain-text template and stops at the next turn.
const chatParams = {
  model,
  messages: [
    { role: 'system', content: 'You answer in one line.' },
    { role: 'user', content: [{ type: 'text', text: 'What is the meaning of life?' }] },
  ],
  max_completion_tokens: 24,
  seed: 3,
  temperature: 0.9,
  logprobs: true,
  top_logprobs: 2,
};
const cc = await client.chat.completions.create(chatParams);
check(cc.object === 'chat.completion' && cc.model === model && cc.id.startsWith('chatcmpl-'), 'chat completion object', cc);
const reply = cc.choices[0];
check(cc.choices.length === 1 && reply.index === 0 && reply.message.role === 'assistant' && typeof reply.message.content === 'string',
  'chat message', cc.choices);
check(['stop', 'length'].includes(reply.finish_reason), 'chat finish_reason', reply);
check(cc.usage.prompt_tokens > 0 && cc.usage.total_tokens === cc.usage.prompt_tokens + cc.usage.completion_tokens, 'chat usage', cc.usage);
check(reply.logprobs.content.length === cc.usage.completion_tokens &&
  reply.logprobs.content.every((t) => t.logprob <= 0 && t.top_logprobs.length <= 2 && Array.isArray(t.bytes)), 'chat logprobs', reply.logprobs);
check(!reply.message.content.includes('\nUser:'), 'reply stops at the next turn', reply.message.content);

// The same chat, streamed: a role delta, content deltas, the finish, usage.
const chatStream = await client.chat.completions.create({ ...chatParams, stream: true, stream_options: { include_usage: true } });
let chatStreamed = '';
let role = null;
let chatFinish = null;
let chatUsage = null;
let chatChunks = 0;
for await (const chunk of chatStream) {
  chatChunks++;
  check(chunk.object === 'chat.completion.chunk' && chunk.id.startsWith('chatcmpl-'), 'chat chunk object', chunk);
  for (const ch of chunk.choices) {
    if (ch.delta.role) role = ch.delta.role;
    if (ch.delta.content) chatStreamed += ch.delta.content;
    if (ch.finish_reason) chatFinish = ch.finish_reason;
  }
  if (chunk.usage) chatUsage = chunk.usage;
}
check(role === 'assistant', 'streamed role', role);
check(chatStreamed === reply.message.content, 'streamed chat equals the chat completion', { chatStreamed, content: reply.message.content });
check(chatFinish === reply.finish_reason, 'streamed chat finish_reason', chatFinish);
check(chatUsage && chatUsage.completion_tokens === cc.usage.completion_tokens && chatUsage.prompt_tokens === cc.usage.prompt_tokens,
  'streamed chat usage', chatUsage);

// n choices and a stop string.
const many = await client.chat.completions.create({ ...chatParams, n: 2, stop: ['.'], logprobs: false, top_logprobs: undefined });
check(many.choices.length === 2 && many.choices.every((ch, i) => ch.index === i && !ch.message.content.includes('.')), 'n chat choices with stop', many.choices);

// Errors come back as the client's typed errors.
try {
  await client.completions.create({ ...params, model: 'gpt-4' });
  check(false, 'unknown model refused', null);
} catch (e) {
  check(e instanceof OpenAI.NotFoundError && e.code === 'model_not_found', 'unknown model error', String(e));
}
try {
  await client.completions.create({ ...params, temperature: 5 });
  check(false, 'bad temperature refused', null);
} catch (e) {
  check(e instanceof OpenAI.BadRequestError && e.param === 'temperature', 'bad temperature error', String(e));
}
try {
  await new OpenAI({ baseURL, apiKey: 'g2d_not-a-key', maxRetries: 0 }).models.list();
  check(false, 'bad key refused', null);
} catch (e) {
  check(e instanceof OpenAI.AuthenticationError && e.code === 'invalid_api_key', 'bad key error', String(e));
}

try {
  await client.chat.completions.create({ ...chatParams, tools: [{ type: 'function', function: { name: 'f', parameters: {} } }] });
  check(false, 'tools refused', null);
} catch (e) {
  check(e instanceof OpenAI.BadRequestError && e.param === 'tools', 'tools error', String(e));
}

console.log(JSON.stringify({
  model, text: c.choices[0].text, streamed, chunks, usage: c.usage, finish,
  chat: reply.message.content, chatStreamed, chatChunks, chatUsage: cc.usage, chatFinish,
}));
