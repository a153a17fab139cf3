/*
 * adonis-billing
 *
 * (c) adonis-billing contributors
 *
 * For the full copyright and license information, please view the LICENSE
 * file that was distributed with this source code.
 */

/**
 * Folder holding the package stubs (config and migrations), used by `configure` and `node ace eject`.
 */
export const stubsRoot = import.meta.dirname
