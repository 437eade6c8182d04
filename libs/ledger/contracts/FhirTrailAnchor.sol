// SPDX-License-Identifier: Apache-2.0
// Pinned to the exact compiler that produced artifacts/FhirTrailAnchor.json, so the committed
// bytecode can be reproduced (scripts/build-contracts.ts; a unit spec fails on a stale artifact).
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

/// @title FHIR Trail checkpoint anchor
/// @notice Publishes the tree heads (size, root) of the FHIR Trail RFC 9162 Merkle log. The log only
/// grows, so a head is accepted only when it names the current head as its predecessor and is
/// larger than it. No health data and no identifiers ever reach this contract: only tree sizes,
/// Merkle roots and the hash of an off-chain batch manifest.
contract FhirTrailAnchor is AccessControl, Pausable {
    bytes32 public constant ANCHORER_ROLE = keccak256("ANCHORER_ROLE");
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");

    // The two uint64 counters share one storage slot (with Pausable's flag), which saves a slot
    // write on every anchor. The genesis head is (0, bytes32(0)).
    uint64 public treeSize;
    uint64 public anchorCount;
    bytes32 public rootHash;

    /// @notice A new tree head was published.
    event Anchored(uint64 indexed treeSize, bytes32 indexed root, uint64 previousSize, bytes32 manifestHash);

    /// @notice The caller's previous head is not the current head (another head landed first).
    error PreviousHeadMismatch(uint64 currentSize, bytes32 currentRoot);
    /// @notice The proposed head is not larger than the current one (stale or replayed).
    error HeadDoesNotExtend(uint64 currentSize, uint64 proposedSize);
    /// @notice A tree head with a zero root.
    error EmptyRoot();

    constructor(address admin, address anchorer) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(ANCHORER_ROLE, admin);
        _grantRole(PAUSER_ROLE, admin);
        _grantRole(ANCHORER_ROLE, anchorer);
    }

    /// @notice Publish the tree head (newSize, newRoot), which must extend (previousSize, previousRoot).
    /// @dev The size check comes first so that a replayed or stale head is always reported as
    /// HeadDoesNotExtend, whatever predecessor it names.
    function anchor(
        uint64 newSize,
        bytes32 newRoot,
        uint64 previousSize,
        bytes32 previousRoot,
        bytes32 manifestHash
    ) external onlyRole(ANCHORER_ROLE) whenNotPaused {
        uint64 currentSize = treeSize;
        if (newSize <= currentSize) revert HeadDoesNotExtend(currentSize, newSize);
        bytes32 currentRoot = rootHash;
        if (previousSize != currentSize || previousRoot != currentRoot) {
            revert PreviousHeadMismatch(currentSize, currentRoot);
        }
        if (newRoot == bytes32(0)) revert EmptyRoot();

        treeSize = newSize;
        rootHash = newRoot;
        unchecked {
            anchorCount += 1;
        }
        emit Anchored(newSize, newRoot, previousSize, manifestHash);
    }

    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }
}
