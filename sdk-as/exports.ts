// The proxy-wasm entry points; a filter re-exports them: export * from "@omnirelay/sdk-as/exports";
export * from "./assembly/exports";
