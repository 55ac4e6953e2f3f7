// AssemblyScript entry of @omnirelay/sdk-as (asc resolves "@omnirelay/sdk-as" to this file).
export * from "./assembly/index";
