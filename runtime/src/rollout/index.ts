/**
 * Rollouts in the data plane: the per-request split between two versions of a filter, and
 * the kill switch. MeshKit decides weights and kills; this folder only applies them.
 */
export { bucketOf, fnv1a } from './hash.ts'
export { DEFAULT_PIN_HEADER, SplitChooser, SplitSpecError, type SplitSpec, type Variant } from './split-chooser.ts'
export { SplitSlot, type SplitSlotOptions, type VariantObserver } from './split-slot.ts'
export { applyKills, KilledFilterFactory, type KillReason, type KillRule } from './kill.ts'
export { applyFilterSplits, filterSplitsFromMesh, readFilterSplits, splitChains, type FilterSplitConfig } from './filter-splits.ts'
