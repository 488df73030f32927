def rotate(nums, k):
    k %= len(nums)
    nums[:] = nums[-k:] + nums[:-k]
def bump(counts, key):
    counts[key] = counts.get(key, 0) + 1
