/** @meshkit/control: MeshKit central (config API, registry, xDS) and the xDS protocol layer. */
export * from './central/index.ts'
export * from './xds/index.ts'
