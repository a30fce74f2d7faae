// The two-tool agent loop of tests/agent_tracer/otlp/test_vercel_ai.py, with the Vercel AI SDK:
// node agent.mjs OPENAI_BASE_URL OTLP_TRACES_URL. Its spans go out through the OTLP protobuf exporter.

import { generateText, tool, stepCountIs } from "ai";
import { createOpenAI } from "@ai-sdk/openai";
import { z } from "zod";
import { BasicTracerProvider, BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { context } from "@opentelemetry/api";

context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());

const [baseURL, endpoint] = process.argv.slice(2);
const provider = new BasicTracerProvider({
  spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: endpoint }))],
});
const tracer = provider.getTracer("vercel-agent");
const openai = createOpenAI({ baseURL, apiKey: "sk-test" });
const city = z.object({ city: z.string() });
const result = await generateText({
  model: openai.chat("gpt-test"),
  system: "You are a terse assistant with tools.",
  prompt: "What is the weather and the time in Paris?",
  tools: {
    get_weather: tool({ description: "The weather in a city", inputSchema: city, execute: async ({ city }) => ({ city, sky: "sunny" }) }),
    get_time: tool({ description: "The local time in a city", inputSchema: city, execute: async ({ city }) => ({ city, time: "12:00" }) }),
  },
  stopWhen: stepCountIs(4),
  experimental_telemetry: { isEnabled: true, functionId: "vercel-agent", tracer },
});
console.log(result.text);
await provider.shutdown();
